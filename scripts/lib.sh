# shellcheck shell=bash
# Shell helpers shared by scripts/test.sh and benches/e2e/run.sh (sourced
# after scripts/services.sh, which sets STREAMHOUSE_CACHE):
#
#   usage                          the calling script's header comment, as help
#   quiet LOG CMD...               run CMD with its output in LOG, shown only
#                                  (its tail) if CMD fails
#   stamp_of FILE...               sha256 of the files, to notice a change
#   up_to_date STAMP FILE...       whether the file STAMP holds the FILEs'
#                                  stamp; sets STAMP_WANT to write to STAMP
#                                  once what depends on them is rebuilt
#   ensure_maven_jars POM DIR STAMP LOG_DIR
#                                  DIR holds POM's runtime dependencies (Maven
#                                  repository in $STREAMHOUSE_CACHE/m2)
#   ensure_venv VENV REQUIREMENTS STAMP LOG_DIR
#                                  a Python venv with REQUIREMENTS installed
#
# The ensure_* steps do nothing while STAMP holds the stamp of their input.

# The comment block at the top of the script is its help text.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

quiet() {
    local log="$1"; shift
    if ! "$@" >"$log" 2>&1; then
        echo "${0##*/}: failed: $*" >&2
        tail -n 40 "$log" >&2
        return 1
    fi
}

stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

STAMP_WANT=""
up_to_date() {
    local stamp="$1"; shift
    STAMP_WANT="$(stamp_of "$@")"
    [[ "$(cat "$stamp" 2>/dev/null)" == "$STAMP_WANT" ]]
}

ensure_maven_jars() {
    local pom="$1" dir="$2" stamp="$3" logs="$4"
    up_to_date "$stamp" "$pom" && [[ -d "$dir" ]] && return 0
    echo "fetching the jars of $pom into $dir" >&2
    rm -rf "$dir" "$stamp"
    mkdir -p "$(dirname "$dir")"
    # -f on a pom outside the work dir: Maven writes nothing next to it
    # (packaging pom, only the dependency plugin runs).
    quiet "$logs/maven.log" mvn -B -q -Dstyle.color=never -f "$pom" \
        -Dmaven.repo.local="$STREAMHOUSE_CACHE/m2" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir" || return 1
    echo "$STAMP_WANT" >"$stamp"
}

ensure_venv() {
    local venv="$1" req="$2" stamp="$3" logs="$4"
    up_to_date "$stamp" "$req" && [[ -x "$venv/bin/python" ]] && return 0
    echo "creating the Python venv in $venv" >&2
    rm -rf "$venv"
    quiet "$logs/venv.log" python3 -m venv "$venv" || return 1
    quiet "$logs/pip.log" "$venv/bin/pip" install --disable-pip-version-check -q -r "$req" || return 1
    echo "$STAMP_WANT" >"$stamp"
}
