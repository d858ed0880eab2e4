//! Test fixture: a real `nats-server` with JetStream on a free loopback port, its data in a
//! temporary directory, stopped when dropped; and an `Env` whose `--spool` is a queue on it.

use crate::harness::{Env, Run};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    ready_before: usize,
    /// Arguments beyond the port and data directory (a cluster node's name and routes).
    extra: Vec<String>,
}

/// Whether `nats-server` can run here. Where it cannot, the test says it skipped, unless CI
/// (which installs it and sets QSPOOL_TEST_NEEDS_NATS) runs it: there it fails instead.
pub fn nats_server_here(test: &str) -> bool {
    let works = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("QSPOOL_TEST_NEEDS_NATS").is_none(),
            "nats-server is needed and does not run here"
        );
        eprintln!("nats-server is not installed: {test} skipped");
    }
    works
}

/// A port nobody listens on now (the kernel's pick; a race with other tests is retried by
/// `start`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsServer {
    /// A fresh server with its data under `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        let data = dir.join("nats-data");
        let log = dir.join("nats.log");
        for _ in 0..5 {
            let mut s = NatsServer {
                child: None,
                port: free_port(),
                data: data.clone(),
                log: log.clone(),
                ready_before: 0,
                extra: Vec::new(),
            };
            if s.spawn() {
                return s;
            }
        }
        panic!("nats-server did not start; log: {}", read(&log));
    }

    /// Starts the server again on the same port and data (after `kill`).
    pub fn restart(&mut self) {
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart; log: {}", read(&self.log));
    }

    fn spawn(&mut self) -> bool {
        self.spawn_background();
        self.wait_ready()
    }

    fn spawn_background(&mut self) {
        // The log is appended to across restarts: this start is ready at its own line.
        let ready_before = read(&self.log).matches("Server is ready").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.data)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        self.ready_before = ready_before;
    }

    fn wait_ready(&mut self) -> bool {
        let ready_before = self.ready_before;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("nats-server exited with {st}");
                self.child = None;
                return false;
            }
            if read(&self.log).matches("Server is ready").count() > ready_before
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// SIGKILL: no flush, no goodbye, as a crash or a power cut leaves it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, queue: &str) -> String {
        format!("nats://127.0.0.1:{}/{queue}", self.port)
    }
}

/// Three nodes on loopback with routes between them, one JetStream cluster.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start(dir: &Path) -> NatsCluster {
        let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<NatsServer> = (0..3)
            .map(|i| NatsServer {
                child: None,
                port: client[i],
                data: dir.join(format!("node{i}")),
                log: dir.join(format!("node{i}.log")),
                ready_before: 0,
                extra: vec![
                    "-n".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "qspool-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", route[i]),
                    "--routes".into(),
                    routes.clone(),
                ],
            })
            .collect();
        for n in &mut nodes {
            n.spawn_background();
        }
        for n in &mut nodes {
            assert!(
                n.wait_ready(),
                "cluster node did not start: {}",
                read(&n.log)
            );
        }
        NatsCluster { nodes }
    }

    /// `nats://HOST:PORT,HOST:PORT,HOST:PORT/QUEUE`: a client that may use any node.
    pub fn url(&self, queue: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("nats://{}/{queue}", hosts.join(","))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A queue on its own server, and a scratch `Env` to run qspool in.
pub struct Js {
    pub env: Env,
    pub server: NatsServer,
    pub url: String,
}

impl Js {
    /// `None` (the test skips) where nats-server is missing outside CI.
    pub fn start(test: &str, init: &[&str]) -> Option<Js> {
        if !nats_server_here(test) {
            return None;
        }
        let env = Env::new();
        let server = NatsServer::start(env.scratch());
        let url = server.url("jobs");
        let js = Js { env, server, url };
        js.q(&[&["init"], init].concat()).expect(0);
        Some(js)
    }

    /// `qspool --spool URL ARGS`.
    pub fn q(&self, args: &[&str]) -> Run<'_> {
        self.env.qspool(args).at(Path::new(&self.url))
    }

    /// The same as a plain `std::process::Command`, for spawning with pipes.
    pub fn std_cmd(&self, args: &[&str]) -> Command {
        raw(&["--spool", &self.url], args)
    }
}

/// `qspool FIRST ARGS` with no inherited spool settings.
pub fn raw(first: &[&str], args: &[&str]) -> Command {
    let mut c = Command::new(crate::harness::qspool_bin());
    c.env_remove("QSPOOL_DIR")
        .env_remove("XDG_STATE_HOME")
        .args(first)
        .args(args);
    c
}

/// A running qspool (a relay, a worker), SIGKILLed if the test ends (or fails) first.
pub struct Running(pub Option<Child>);

impl Running {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    pub fn wait_with_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn spawn(mut c: Command) -> Running {
    Running(Some(c.stdout(Stdio::null()).spawn().unwrap()))
}
