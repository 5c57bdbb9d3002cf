//! A throwaway PostgreSQL cluster from the machine's own binaries (initdb, pg_ctl), on a
//! random loopback port and a private socket directory; stopped on drop.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_root: bool,
}

fn pg_bin() -> PathBuf {
    std::env::var_os("INBOUND_PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin();
        assert!(
            bin.join("initdb").exists(),
            "{} missing: install postgresql-15 (`make test` expects it)",
            bin.display()
        );
        let as_root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_root {
            // The server refuses to run as root: hand the directory to the postgres user.
            assert!(Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap().success());
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut pg = Postgres { dir, port, bin, as_root };
        let data = pg.data_dir();
        pg.run("initdb", &["-D", data.to_str().unwrap(), "-U", "inbound", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        // A port picked as free can be taken by a concurrently starting test: retry on another.
        for attempt in 0.. {
            match pg.try_start_server() {
                Ok(()) => break,
                Err(e) if attempt >= 2 => panic!("postgres did not start: {e}"),
                Err(_) => pg.port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
            }
        }
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        if let Err(e) = self.try_run(tool, args) {
            panic!("{e}");
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(tool);
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).stdin(Stdio::null()).output().unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// (Re)starts the server on the same port and data.
    pub fn start_server(&self) {
        if let Err(e) = self.try_start_server() {
            panic!("{e}");
        }
    }

    fn try_start_server(&self) -> Result<(), String> {
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.path().display());
        let log = self.dir.path().join("postgres.log");
        let data = self.data_dir();
        let args =
            ["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "-t", "30", "start"];
        self.try_run("pg_ctl", &args)?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err("postgres did not listen".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: committed transactions are on disk).
    pub fn stop_server(&self) {
        self.run("pg_ctl", &["-D", self.data_dir().to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://inbound@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command.arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
    }
}
