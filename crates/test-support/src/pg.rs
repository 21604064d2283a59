//! Fresh PostgreSQL databases for tests, on the server named by
//! `THENA_SF_TEST_PG` (default: the machine's, `postgres://postgres@127.0.0.1:5432/test`).

use sqlx::{Connection, Executor, PgConnection};

pub fn server_url() -> String {
    std::env::var("THENA_SF_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database made for one test, dropped afterwards.
pub struct TempDb {
    pub url: String,
    name: String,
}

fn with_db(url: &str, db: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("a database URL ends with /dbname");
    format!("{base}/{db}")
}

impl TempDb {
    pub async fn create() -> TempDb {
        let server = server_url();
        let mut c = PgConnection::connect(&server).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {server} ({e}); start it (`.ci/run` does) or set THENA_SF_TEST_PG")
        });
        let name = format!(
            "thena_sf_t_{}_{:x}",
            std::process::id(),
            rand::random::<u64>()
        );
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        TempDb {
            url: with_db(&server, &name),
            name,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = PgConnection::connect(&server).await {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
