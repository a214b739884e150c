//! Network inputs over the loopback interface: a recording served by a small HTTP server, live
//! MPEG-TS streams that ffmpeg sends in real time over UDP and over TCP to a single client, and
//! a UDP port where nothing arrives.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{media, moodscope, read_rows, read_summary, run, CsvRow};

/// Frames in the clip that `make_clip` cuts: two seconds at 24000/1001 fps.
const CLIP_FRAMES: usize = 48;

/// Cuts the first 48 frames of the demo clip into `folder`, with the index at the front of
/// the file so that it can be read from the start without seeking.
fn make_clip(folder: &Path) -> PathBuf {
    let clip = folder.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(media("WolfgangLanger_Pexels.mp4"))
        .args(["-an", "-frames:v", &CLIP_FRAMES.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(&clip)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not cut the clip");
    clip
}

/// Serves `file` to every GET request on a loopback port until the test ends; returns the
/// URL. Range requests get the whole file, which HTTP allows.
fn serve_over_http(file: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            let file = file.clone();
            thread::spawn(move || answer(connection, &file));
        }
    });
    format!("http://127.0.0.1:{port}/clip.mp4")
}

fn answer(connection: TcpStream, file: &Path) {
    let mut reader = BufReader::new(&connection);
    let mut line = String::new();
    // The request line and headers end with an empty line.
    while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    let body = std::fs::read(file).expect("the clip is readable");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let mut writer = &connection;
    // ffmpeg may close a connection early once it has what it needs.
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(&body);
}

fn analyze(input: &str, output: &Path) -> (String, Vec<CsvRow>) {
    let result = run(moodscope()
        .args(["analyze", "--output"])
        .arg(output)
        .arg(input));
    assert_eq!(result.status.code(), Some(0), "analyze {input} failed");
    let tables = String::from_utf8_lossy(&result.stdout).into_owned();
    (tables, read_rows(output))
}

#[test]
fn http_recording_matches_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path());
    let url = serve_over_http(clip.clone());

    let (_, from_file) = analyze(clip.to_str().unwrap(), &dir.path().join("file.csv"));
    let (tables, from_url) = analyze(&url, &dir.path().join("url.csv"));

    // A recording has a length, so every frame is analysed rather than dropped to keep up.
    assert_eq!(from_file.len(), CLIP_FRAMES);
    assert_eq!(from_url.len(), CLIP_FRAMES, "{tables}");
    assert!(!tables.contains("dropped"), "{tables}");
    for (file_row, url_row) in from_file.iter().zip(&from_url) {
        assert_eq!(url_row.source, url);
        assert_eq!(url_row.frame, file_row.frame);
        assert_eq!(url_row.source_time, file_row.source_time);
        assert_eq!(url_row.status, "face");
        assert_eq!(url_row.bbox, file_row.bbox);
        assert_eq!(url_row.probabilities, file_row.probabilities);
    }
}

/// Returns a UDP port on the loopback interface that was free a moment ago.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a loopback port");
    socket.local_addr().unwrap().port()
}

/// Starts ffmpeg sending `clip` in real time as MPEG-TS to `url`, again and again when
/// `looping`.
fn send_live_stream(clip: &Path, url: &str, looping: bool) -> Sender {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"]);
    if looping {
        command.args(["-stream_loop", "-1"]);
    }
    let child = command
        .arg("-i")
        .arg(clip)
        .args([
            "-an",
            "-c:v",
            "mpeg2video",
            "-q:v",
            "5",
            "-f",
            "mpegts",
            url,
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    Sender(child)
}

/// Kills the sender when the test ends, passed or failed.
struct Sender(Child);

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Counts the rows written so far, or 0 before the file exists.
fn rows_so_far(csv: &Path) -> usize {
    std::fs::read_to_string(csv).map_or(0, |text| text.lines().count().saturating_sub(1))
}

#[test]
fn live_udp_stream_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path());
    let url = format!("udp://127.0.0.1:{}", free_udp_port());
    let _sender = send_live_stream(&clip, &url, true);

    let csv = dir.path().join("faces.csv");
    let summary = dir.path().join("summary.csv");
    let monitor = moodscope()
        .args(["--headless", "--input", &url, "--csv"])
        .arg(&csv)
        .arg("--summary")
        .arg(&summary)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A live stream has no end: wait for a second's worth of rows, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(90);
    while rows_so_far(&csv) < 24 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = monitor.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "exit status {:?}", output.status);

    let rows = read_rows(&csv);
    assert!(rows.len() >= 24, "only {} rows: {stdout}", rows.len());
    for pair in rows.windows(2) {
        assert!(pair[0].frame < pair[1].frame, "frames out of order");
        assert!(
            pair[0].source_time < pair[1].source_time,
            "times out of order"
        );
    }
    for row in &rows {
        assert_eq!(row.source, url);
        assert_eq!(row.status, "face", "{row:?}");
        let total: f64 = row.probabilities.unwrap().iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
    }
    // The summary counts exactly the faces that have rows.
    let faces: usize = read_summary(&summary)[0][3].parse().unwrap();
    assert_eq!(faces, rows.len());
    assert!(stdout.contains("frames in"), "{stdout}");
}

/// Returns a TCP port on the loopback interface that was free a moment ago.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener.local_addr().unwrap().port()
}

/// Returns true when Linux's socket table shows a TCP socket listening on `port`.
fn is_listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    // Columns: slot, local address, remote address, state (0A is LISTEN), ...
    table.lines().skip(1).any(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        columns.len() > 3 && columns[1].ends_with(&local) && columns[3] == "0A"
    })
}

#[test]
fn single_connection_server_is_read() {
    // ffmpeg serves the clip once, in real time, to the first client that connects. The
    // stream has no length, so it is live and a frame may be dropped when analysis lags.
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path());
    let port = free_tcp_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let listening = format!("{url}?listen=1");
    let _server = send_live_stream(&clip, &listening, false);
    // A client that comes before ffmpeg listens is refused, and a test connection would use
    // up the only one, so the test waits until the socket table shows the listening socket.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_listening(port) {
        assert!(Instant::now() < deadline, "ffmpeg never listened on {url}");
        thread::sleep(Duration::from_millis(100));
    }

    let (tables, rows) = analyze(&url, &dir.path().join("rows.csv"));
    assert!(!rows.is_empty(), "{tables}");
    assert!(rows.len() <= CLIP_FRAMES, "{tables}");
    assert!(rows.iter().all(|row| row.status == "face"), "{rows:?}");
}

#[test]
fn silent_stream_fails_naming_it() {
    // Nothing sends to this port, so ffprobe gives up after the silence limit.
    let url = format!("udp://127.0.0.1:{}", free_udp_port());
    let output = run(moodscope().args(["--headless", "--input", &url]));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("nothing arrived for 10 s"), "{stderr}");
}
