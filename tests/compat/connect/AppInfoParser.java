package org.apache.kafka.common.utils;

/**
 * A shim for connect.sh, not a StreamHouse class: Maven Central has no
 * connect-file 4.4.0 (the FileStream connectors), so the runner uses
 * connect-file 4.3.1, whose connectors report their version through
 * org.apache.kafka.common.utils.AppInfoParser. kafka-clients 4.4.0 moved that
 * class to ...utils.internals; this forwards to it. It is the only class
 * connect-file 4.3.1 needs that 4.4.0 lacks.
 */
public final class AppInfoParser {
    private AppInfoParser() {}

    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }

    public static String getCommitId() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getCommitId();
    }
}
