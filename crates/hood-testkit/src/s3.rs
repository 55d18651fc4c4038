//! A real S3-compatible server per test: `moto_server` (moto, from PyPI,
//! installed by `scripts/test`), on a free loopback port, killed on drop.
//! It speaks S3's REST protocol; tests reach it with the same client code
//! Hood uses in cluster mode.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the `moto_server` executable.
pub const MOTO_ENV: &str = "HOOD_TEST_MOTO_SERVER";

/// Credentials the server accepts (it checks none; clients must sign).
pub const ACCESS_KEY_ID: &str = "hood-test";
pub const SECRET_ACCESS_KEY: &str = "hood-test-secret";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    addr: SocketAddr,
}

impl S3Server {
    /// Starts a server, or prints a loud skip (a failure under CI) when
    /// `HOOD_TEST_MOTO_SERVER` is not set.
    pub fn start(test: &str) -> Option<Self> {
        let bin = crate::required_file(MOTO_ENV, test)?;
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of `bucket` on this server, signing with the test
    /// credentials (what Hood builds from `HOOD_STORAGE_URL`).
    pub fn bucket(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_region(REGION)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .with_allow_http(true)
            .build()
            .expect("an S3 client of the test server")
    }

    /// Creates a bucket (moto accepts an unsigned `PUT /{bucket}`).
    pub fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(self.addr).expect("connect to moto");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("send");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "creating bucket {name}: {answer}"
        );
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
