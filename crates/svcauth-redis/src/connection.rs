//! One way to send commands whatever the deployment: redis-rs's connection
//! manager for one node, its cluster connection for a cluster (slots,
//! redirects and topology changes handled there), and for Sentinel the
//! current primary, asked of the sentinels again after an error.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult};

use crate::RedisStoreError;
use crate::config::Topology;

/// A connection to the deployment, cheap to share: commands are pipelined.
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster {
        client: ClusterClient,
        connection: tokio::sync::OnceCell<ClusterConnection>,
    },
    Sentinel {
        client: tokio::sync::Mutex<SentinelClient>,
        primary: Mutex<Option<MultiplexedConnection>>,
        connect_timeout: Duration,
    },
}

impl Connection {
    /// A lazy connection: nothing is dialled until the first command, so a
    /// service starts while Redis is down.
    pub(crate) fn open(
        topology: &Topology,
        response_timeout: Duration,
    ) -> Result<Self, RedisStoreError> {
        let url_error = |e: redis::RedisError| RedisStoreError::Url(e.to_string());
        let connect_timeout = response_timeout.max(Duration::from_millis(250));
        Ok(match topology {
            Topology::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(url_error)?;
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(connect_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(1));
                Connection::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(url_error)?,
                )
            }
            Topology::Cluster(seeds) => Connection::Cluster {
                client: ClusterClient::builder(seeds.iter().map(String::as_str))
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(1)
                    .build()
                    .map_err(url_error)?,
                connection: tokio::sync::OnceCell::new(),
            },
            Topology::Sentinel { sentinels, service } => Connection::Sentinel {
                client: tokio::sync::Mutex::new(
                    SentinelClient::build(
                        sentinels.iter().map(String::as_str).collect(),
                        service.clone(),
                        None,
                        SentinelServerType::Master,
                    )
                    .map_err(url_error)?,
                ),
                primary: Mutex::new(None),
                connect_timeout,
            },
        })
    }

    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.send(Request::Cmd(cmd)).await
    }

    pub(crate) async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        self.send(Request::Pipe(pipe)).await
    }

    async fn send<T: FromRedisValue>(&self, request: Request<'_>) -> RedisResult<T> {
        match self {
            Connection::Single(manager) => request.run(&mut manager.clone()).await,
            Connection::Cluster { .. } => request.run(&mut self.cluster().await?).await,
            Connection::Sentinel { .. } => {
                let answer = request.run(&mut self.primary().await?).await;
                self.forget_primary_after(&answer);
                answer
            }
        }
    }

    async fn cluster(&self) -> RedisResult<ClusterConnection> {
        let Connection::Cluster { client, connection } = self else {
            unreachable!("called on a cluster connection only")
        };
        connection
            .get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
    }

    /// The primary's connection: the one in use, or the primary the
    /// sentinels name now.
    async fn primary(&self) -> RedisResult<MultiplexedConnection> {
        let Connection::Sentinel {
            client,
            primary,
            connect_timeout,
        } = self
        else {
            unreachable!("called on a Sentinel connection only")
        };
        if let Some(connection) = primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(connection);
        }
        let mut client = client.lock().await;
        if let Some(connection) = primary
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Ok(connection);
        }
        let connection = tokio::time::timeout(*connect_timeout, client.get_async_connection())
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Io, "no primary answered in time"))
            })??;
        *primary.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection.clone());
        Ok(connection)
    }

    /// After an error that says the primary is gone or is a primary no
    /// more (a failover demoted it: `READONLY`), the next command asks the
    /// sentinels again.
    fn forget_primary_after<T>(&self, answer: &RedisResult<T>) {
        let Connection::Sentinel { primary, .. } = self else {
            return;
        };
        if let Err(error) = answer {
            let gone = error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal()
                || error.is_timeout()
                || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
            if gone {
                *primary.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
        }
    }
}

/// A command or a pipeline: what one connection sends.
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

impl Request<'_> {
    async fn run<T: FromRedisValue>(
        self,
        connection: &mut impl redis::aio::ConnectionLike,
    ) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(connection).await,
            Request::Pipe(pipe) => pipe.query_async(connection).await,
        }
    }
}
