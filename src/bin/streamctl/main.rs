//! `streamctl`: StreamHouse's own command line, speaking the Kafka protocol
//! to any agent. Global flags come before the command:
//! `streamctl --bootstrap H:P --output json topic list`.
//!
//! Exit status: 0 on success, 1 when the cluster refused or could not be
//! reached (one line on stderr says why), 2 for bad arguments.

mod client;
mod cluster;
mod group;
mod output;
mod records;
mod storage;
mod topic;

use clap::{Args, CommandFactory, Parser, Subcommand};

use client::{ClientError, Cluster};
use output::Format;

#[derive(Parser, Debug)]
#[command(name = "streamctl", version, about = "StreamHouse's command line", long_about = None)]
struct Cli {
    /// An agent to talk to (any agent of the cluster).
    #[arg(
        long,
        global = true,
        env = "STREAMHOUSE_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value = "table")]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, describe, delete and change topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// List, describe (offsets and lag), reset and delete consumer groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The cluster's agents, their zones and the partitions each leads.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Bytes and objects per topic, and a check of every index entry against
    /// the store; read from the catalog and the store directly.
    Storage(StorageArgs),
    /// Produce one record (--value), or one record per line of stdin.
    Produce(ProduceArgs),
    /// Print records from a topic, from the earliest offset unless told
    /// otherwise, and exit at the end (unless --follow).
    Consume(ConsumeArgs),
    /// Print a completion script for a shell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        topic: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// A topic config, NAME=VALUE (repeatable).
        #[arg(long = "config", short = 'c')]
        configs: Vec<String>,
    },
    /// List the topics.
    List,
    /// A topic's partitions, leaders, offsets and configs set on it.
    Describe { topic: String },
    /// Delete a topic and its records.
    Delete { topic: String },
    /// Set (--set NAME=VALUE) or remove (--delete NAME) topic configs.
    AlterConfig {
        topic: String,
        #[arg(long = "set")]
        set: Vec<String>,
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Raise a topic's partition count to --total.
    AddPartitions {
        topic: String,
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        total: i32,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List the groups.
    List,
    /// A group's state, members, and per partition its committed offset,
    /// the latest offset and the lag.
    Describe { group: String },
    /// Move an inactive group's offsets on a topic.
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// One partition; by default all of the topic's.
        #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
        partition: Option<i32>,
        /// `earliest`, `latest` or an offset.
        #[arg(long, value_parser = parse_reset_to)]
        to: group::ResetTo,
    },
    /// Delete an inactive group and its offsets.
    Delete { group: String },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The cluster id, the agents and the partitions each leads.
    Info,
}

#[derive(Args, Debug)]
struct StorageArgs {
    /// The embedded layout's folder (catalog.db and objects/), as the agent's
    /// --data-dir.
    #[arg(long, default_value = "./data")]
    data_dir: String,
    /// The catalog URL (instead of DATA_DIR/catalog.db).
    #[arg(long, env = "STREAMHOUSE_CATALOG")]
    catalog: Option<String>,
    /// The object store URL (instead of DATA_DIR/objects).
    #[arg(long, env = "STREAMHOUSE_STORE")]
    store: Option<String>,
    #[command(subcommand)]
    command: StorageCommand,
}

#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Retained bytes and objects per topic, and the compaction backlog.
    Usage,
    /// Every index entry names an object that exists and holds whole, intact
    /// batches filling the entry's offsets; exit status 1 otherwise.
    Check,
}

#[derive(Args, Debug)]
struct ProduceArgs {
    topic: String,
    /// The partition; by default the key's (as the Java client hashes it),
    /// or each partition in turn for records without a key.
    #[arg(value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    #[arg(long)]
    key: Option<String>,
    /// The record's value; without it, each line of stdin is a record.
    #[arg(long)]
    value: Option<String>,
}

#[derive(Args, Debug)]
struct ConsumeArgs {
    topic: String,
    /// One partition; by default all of them.
    #[arg(value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Start at this offset (of every partition read).
    #[arg(long, conflicts_with = "from_beginning", value_parser = clap::value_parser!(i64).range(0..))]
    offset: Option<i64>,
    /// Start at each partition's earliest offset (the default).
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many records.
    #[arg(short = 'n', long = "count")]
    count: Option<u64>,
    /// Keep waiting for new records instead of exiting at the end.
    #[arg(long)]
    follow: bool,
    /// How records are printed (defaults to --output).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

fn parse_reset_to(value: &str) -> Result<group::ResetTo, String> {
    match value {
        "earliest" => Ok(group::ResetTo::Earliest),
        "latest" => Ok(group::ResetTo::Latest),
        _ => value
            .parse::<i64>()
            .ok()
            .filter(|&o| o >= 0)
            .map(group::ResetTo::Offset)
            .ok_or_else(|| "expected earliest, latest or an offset (0 or more)".to_string()),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("streamctl: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamctl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let format = cli.output;
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "streamctl",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if let Command::Storage(args) = cli.command {
        let backends = storage::Backends::new(&args.data_dir, args.catalog, args.store);
        return match args.command {
            StorageCommand::Usage => storage::usage(&backends, format).await,
            StorageCommand::Check => match storage::check(&backends, format).await? {
                true => Ok(()),
                false => Err(ClientError::Usage("storage check found problems".into())),
            },
        };
    }
    let mut cluster = Cluster::connect(&cli.bootstrap).await?;
    match cli.command {
        Command::Topic(command) => match command {
            TopicCommand::Create {
                topic,
                partitions,
                configs,
            } => {
                let configs = topic::parse_configs(&configs)?;
                topic::create(&mut cluster, format, &topic, partitions, &configs).await
            }
            TopicCommand::List => topic::list(&mut cluster, format).await,
            TopicCommand::Describe { topic } => topic::describe(&mut cluster, format, &topic).await,
            TopicCommand::Delete { topic } => topic::delete(&mut cluster, format, &topic).await,
            TopicCommand::AlterConfig { topic, set, delete } => {
                let set = topic::parse_configs(&set)?;
                topic::alter_config(&mut cluster, format, &topic, &set, &delete).await
            }
            TopicCommand::AddPartitions { topic, total } => {
                topic::add_partitions(&mut cluster, format, &topic, total).await
            }
        },
        Command::Group(command) => match command {
            GroupCommand::List => group::list(&mut cluster, format).await,
            GroupCommand::Describe { group } => group::describe(&mut cluster, format, &group).await,
            GroupCommand::ResetOffsets {
                group,
                topic,
                partition,
                to,
            } => group::reset_offsets(&mut cluster, format, &group, &topic, partition, to).await,
            GroupCommand::Delete { group } => group::delete(&mut cluster, format, &group).await,
        },
        Command::Cluster(ClusterCommand::Info) => cluster::info(&mut cluster, format).await,
        Command::Produce(args) => {
            let target = records::Target {
                topic: args.topic,
                partition: args.partition,
                key: args.key,
            };
            records::produce(&mut cluster, format, &target, args.value).await
        }
        Command::Consume(args) => {
            let reading = records::Reading {
                topic: args.topic,
                partition: args.partition,
                offset: args.offset,
                max_records: args.count,
                follow: args.follow,
            };
            records::consume(&mut cluster, args.format.unwrap_or(format), &reading).await
        }
        Command::Completions { .. } | Command::Storage(_) => Ok(()),
    }
}
