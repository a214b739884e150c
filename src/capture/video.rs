//! Video files and network streams, decoded by the `ffmpeg` program into raw RGB frames.
//!
//! For a file, `ffprobe` first reads the stream's size, rotation, frame rate and start time.
//! Then `ffmpeg` writes `rgb24` frames to its stdout, while its `showinfo` filter logs each
//! frame's size and presentation time to stderr, where a thread parses it. `-fps_mode
//! passthrough` makes ffmpeg output every decoded frame exactly once, so frames and log lines
//! pair up in order.
//!
//! A network stream is not probed: a server that serves one connection at a time would give
//! it to ffprobe, and probing a live stream takes seconds. Nor is a named pipe, which ffprobe
//! would empty. ffmpeg alone opens it, and the size,
//! rate, length and start time come from its log before the first frame.
//!
//! Timestamps are presentation times relative to the start of the video stream: ffmpeg keeps
//! the container's times (`-copyts`) and the source subtracts the stream's start time. A live
//! stream counts from its first received frame instead.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::Deserialize;

use super::{is_read_once, is_stream_url, CaptureError, Frame, FrameSource, MAX_FRAME_BYTES};

/// Number of ffmpeg log lines kept to explain a failure.
const KEPT_LOG_LINES: usize = 8;

/// How often a source checks whether the run has been stopped, to end its ffmpeg.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Properties of the first video stream, as `ffprobe` (or for a stream, ffmpeg's log) reports
/// them.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct StreamInfo {
    /// Frame width after applying the rotation metadata, as ffmpeg outputs it.
    pub(crate) width: u32,
    /// Frame height after applying the rotation metadata.
    pub(crate) height: u32,
    /// Rotation from the display matrix or the `rotate` tag, in degrees; 0 for a network
    /// stream, whose size is read from frames that ffmpeg has already turned.
    pub(crate) rotation: i32,
    pub(crate) frame_rate: Option<f64>,
    /// Presentation time of the stream's first frame in seconds, when the container stores one.
    pub(crate) start_time: Option<f64>,
    /// Length in seconds, from the stream or else the container; `None` for live streams.
    pub(crate) duration: Option<f64>,
    /// Number of frames, when the container stores it.
    pub(crate) frame_count: Option<u64>,
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    duration: Option<String>,
}

#[derive(Deserialize)]
struct ProbeStream {
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    start_time: Option<String>,
    duration: Option<String>,
    nb_frames: Option<String>,
    #[serde(default)]
    tags: std::collections::HashMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

/// Runs `ffprobe` on `input` and returns its first video stream's properties.
pub(crate) fn probe(input: &str) -> Result<StreamInfo, CaptureError> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(
            "stream=width,height,avg_frame_rate,r_frame_rate,start_time,duration,nb_frames\
             :stream_tags=rotate:stream_side_data=rotation:format=duration",
        )
        .args(["-of", "json", "--", input])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| spawn_error("ffprobe", source))?;
    let decode_error = |reason: String| CaptureError::Decode {
        path: PathBuf::from(input),
        reason,
    };
    if !output.status.success() {
        let message = without_addresses(&last_lines(&String::from_utf8_lossy(&output.stderr), 3));
        let message = if message.is_empty() {
            format!("ffprobe ended with {}", output.status)
        } else {
            format!("ffprobe: {message}")
        };
        return Err(decode_error(format!("not a readable video ({message})")));
    }
    let parsed: ProbeOutput = serde_json::from_slice(&output.stdout)
        .map_err(|error| decode_error(format!("unexpected ffprobe output: {error}")))?;
    let Some(stream) = parsed.streams.into_iter().next() else {
        return Err(decode_error("the file contains no video stream".into()));
    };
    let container_duration = parsed.format.and_then(|format| format.duration);
    stream_info(stream, container_duration)
        .ok_or_else(|| decode_error("ffprobe reports no frame size".into()))
}

fn stream_info(stream: ProbeStream, container_duration: Option<String>) -> Option<StreamInfo> {
    let (width, height) = (stream.width?, stream.height?);
    if width == 0 || height == 0 {
        return None;
    }
    let rotation = rotation_degrees(&stream);
    // ffmpeg rotates frames by the display matrix on output, so a quarter turn swaps the sides.
    let quarter_turn = rotation.rem_euclid(180) == 90;
    let (width, height) = if quarter_turn {
        (height, width)
    } else {
        (width, height)
    };
    let frame_rate = [&stream.avg_frame_rate, &stream.r_frame_rate]
        .into_iter()
        .find_map(|rate| rate.as_deref().and_then(parse_rational));
    let seconds = |text: Option<&str>| {
        text.and_then(|text| text.parse::<f64>().ok())
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    let start_time = seconds(stream.start_time.as_deref());
    let duration = seconds(stream.duration.as_deref()).or(seconds(container_duration.as_deref()));
    let frame_count = stream
        .nb_frames
        .as_deref()
        .and_then(|text| text.parse().ok());
    Some(StreamInfo {
        width,
        height,
        rotation,
        frame_rate,
        start_time,
        duration,
        frame_count,
    })
}

/// Reads the rotation from the display matrix side data, or else from the older `rotate` tag.
fn rotation_degrees(stream: &ProbeStream) -> i32 {
    let from_side_data = stream
        .side_data_list
        .iter()
        .find_map(|side_data| side_data.get("rotation")?.as_f64());
    let from_tag = || {
        stream
            .tags
            .get("rotate")
            .and_then(|text| text.trim().parse::<f64>().ok())
    };
    from_side_data
        .or_else(from_tag)
        .map_or(0, |degrees| degrees.round() as i32)
}

/// Parses an ffprobe rate such as `24000/1001`; `0/0` (unknown) gives `None`.
fn parse_rational(text: &str) -> Option<f64> {
    let (numerator, denominator) = text.split_once('/')?;
    let numerator: f64 = numerator.parse().ok()?;
    let denominator: f64 = denominator.parse().ok()?;
    let rate = numerator / denominator;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

fn spawn_error(program: &'static str, source: io::Error) -> CaptureError {
    CaptureError::FfmpegNotFound { program, source }
}

/// Returns the last `count` non-empty lines of `text`, joined by " / ".
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines[lines.len().saturating_sub(count)..].join(" / ")
}

/// Per-frame facts that the `showinfo` filter logs.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ShowInfo {
    pts_time: f64,
    width: u32,
    height: u32,
}

/// Parses a `showinfo` frame line, e.g.
/// `[Parsed_showinfo_0 @ 0x55] [info] n:   0 pts:      0 pts_time:0  ... s:48x64 i:P ...`.
fn parse_showinfo(line: &str) -> Option<ShowInfo> {
    if !line.contains("Parsed_showinfo") {
        return None;
    }
    let mut pts_time = None;
    let mut size = None;
    for field in line.split_whitespace() {
        if let Some(value) = field.strip_prefix("pts_time:") {
            pts_time = value.parse::<f64>().ok();
        } else if let Some(value) = field.strip_prefix("s:") {
            let (width, height) = value.split_once('x')?;
            size = Some((width.parse().ok()?, height.parse().ok()?));
        }
    }
    let (width, height) = size?;
    Some(ShowInfo {
        pts_time: pts_time?,
        width,
        height,
    })
}

/// Facts about the input that ffmpeg logs before its first frame.
#[derive(Clone, Debug, Default, PartialEq)]
struct LoggedInput {
    /// Length in seconds; `None` for `Duration: N/A`, as live streams report.
    duration: Option<f64>,
    start_time: Option<f64>,
    frame_rate: Option<f64>,
    /// Set once the input's `Duration:` line has been read.
    header_read: bool,
}

impl LoggedInput {
    /// Reads the input header's `Duration: 00:00:19.69, start: 0.000000, bitrate: ...` line
    /// and the rate in `showinfo`'s `config in time_base: 1/24000, frame_rate: 24000/1001`.
    /// Only the first of each counts: the output's description follows the input's.
    fn read_line(&mut self, line: &str) {
        if let Some((_, fields)) = line.split_once("Duration: ") {
            if self.header_read {
                return;
            }
            self.header_read = true;
            let mut fields = fields.split(", ");
            self.duration = fields.next().and_then(parse_clock);
            self.start_time = fields
                .find_map(|field| field.strip_prefix("start: "))
                .and_then(|start| start.trim().parse().ok());
        } else if let Some((_, config)) = line.split_once("config in ") {
            if self.frame_rate.is_none() {
                self.frame_rate = config
                    .split_once("frame_rate: ")
                    .and_then(|(_, rate)| parse_rational(rate.trim()));
            }
        }
    }
}

/// Parses ffmpeg's `HH:MM:SS.ss` into seconds; `N/A` gives `None`.
fn parse_clock(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// The log thread's record of ffmpeg's stderr, besides the per-frame facts.
#[derive(Debug, Default)]
struct LogRecord {
    /// The last warning and error lines, to explain a failure.
    problems: VecDeque<String>,
    /// Lines logged at the error level or above.
    errors: u64,
    input: LoggedInput,
}

/// Reads ffmpeg's stderr: sends each frame's [`ShowInfo`], records the input's header and
/// keeps the last problem lines.
fn read_log(stderr: impl Read, frames: mpsc::Sender<ShowInfo>, record: Arc<Mutex<LogRecord>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(info) = parse_showinfo(&line) {
            // The receiver is gone once the source is dropped; the rest of the log is unused.
            let _ = frames.send(info);
            continue;
        }
        let mut record = record.lock().unwrap_or_else(|poison| poison.into_inner());
        record.input.read_line(&line);
        // `-loglevel level+info` tags each line with its level.
        let is_problem = ["[error]", "[fatal]", "[panic]", "[warning]"]
            .iter()
            .any(|tag| line.contains(tag));
        if ["[error]", "[fatal]", "[panic]"]
            .iter()
            .any(|tag| line.contains(tag))
        {
            record.errors += 1;
        }
        if is_problem {
            if record.problems.len() == KEPT_LOG_LINES {
                record.problems.pop_front();
            }
            let problem = line.replace("[error] ", "").replace("[fatal] ", "");
            record.problems.push_back(without_addresses(&problem));
        }
    }
}

/// Removes the memory addresses from ffmpeg's context tags: `[h264 @ 0x55d0c1] msg` becomes
/// `[h264] msg`.
fn without_addresses(line: &str) -> String {
    let mut rest = line;
    let mut cleaned = String::with_capacity(line.len());
    while let Some(start) = rest.find(" @ 0x") {
        cleaned.push_str(&rest[..start]);
        let address = &rest[start + " @ 0x".len()..];
        let end = address
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(address.len());
        rest = &address[end..];
    }
    cleaned.push_str(rest);
    cleaned
}

/// A running `ffmpeg` process that decodes one input into frames.
pub(crate) struct VideoSource {
    input: String,
    live: bool,
    info: StreamInfo,
    /// Shared with the thread that ends ffmpeg when the run stops.
    child: Arc<Mutex<Child>>,
    stdout: ChildStdout,
    frame_infos: Receiver<ShowInfo>,
    /// The first frame's facts, read early to learn a network stream's size.
    first_shown: Option<ShowInfo>,
    log: Arc<Mutex<LogRecord>>,
    log_thread: Option<JoinHandle<()>>,
    /// Presentation time that maps to timestamp 0.
    origin: Option<f64>,
    frames_read: u64,
    finished: bool,
}

impl VideoSource {
    /// Probes `input` and starts ffmpeg on it.
    #[cfg(test)]
    pub(crate) fn open(input: &str) -> Result<VideoSource, CaptureError> {
        VideoSource::open_cancellable(input, None)
    }

    /// Probes `input` and starts ffmpeg on it; ffmpeg is ended once `cancel` is set.
    pub(crate) fn open_cancellable(
        input: &str,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<VideoSource, CaptureError> {
        let is_url = is_stream_url(input);
        if !is_url && !Path::new(input).exists() {
            return Err(CaptureError::NotFound {
                path: PathBuf::from(input),
            });
        }
        let read_once = is_read_once(input);
        let is_empty =
            |path| std::fs::metadata(path).is_ok_and(|file| file.is_file() && file.len() == 0);
        if !is_url && is_empty(input) {
            return Err(CaptureError::Decode {
                path: PathBuf::from(input),
                reason: "the file is empty".into(),
            });
        }
        let probed = if read_once { None } else { Some(probe(input)?) };
        let started = Instant::now();
        let mut child = ffmpeg_command(input)
            .spawn()
            .map_err(|source| spawn_error("ffmpeg", source))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => (stdout, stderr),
            _ => unreachable!("stdout and stderr are piped by ffmpeg_command"),
        };

        let log = Arc::new(Mutex::new(LogRecord::default()));
        let (log_thread, frame_infos) = match spawn_log_reader(stderr, Arc::clone(&log)) {
            Ok(started) => started,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                let path = PathBuf::from(input);
                return Err(CaptureError::Io { path, source });
            }
        };
        let child = Arc::new(Mutex::new(child));
        if let Some(cancel) = cancel {
            end_when_cancelled(Arc::downgrade(&child), cancel);
        }
        let mut source = VideoSource {
            input: input.to_owned(),
            live: false,
            origin: None,
            info: StreamInfo::default(),
            child,
            stdout,
            frame_infos,
            first_shown: None,
            log,
            log_thread: Some(log_thread),
            frames_read: 0,
            finished: false,
        };
        source.info = match probed {
            Some(info) => info,
            None => source.read_stream_header(started)?,
        };
        let (width, height) = (source.info.width, source.info.height);
        if u64::from(width) * u64::from(height) * 3 > MAX_FRAME_BYTES {
            return Err(CaptureError::Decode {
                path: PathBuf::from(input),
                reason: format!(
                    "the frames are {width}x{height} pixels, more than the {} MiB of RGB \
                     allowed",
                    MAX_FRAME_BYTES >> 20
                ),
            });
        }
        // A URL without a duration is a live stream. One with a duration is a recording served
        // over the network, which is read frame by frame like a file, as is a pipe: its
        // writer waits while the pipe is full, so no frame needs dropping.
        source.live = is_url && source.info.duration.is_none();
        // A probed file counts from its stream's start; an input read once counts from its
        // first frame, since ffmpeg logs the start rounded to microseconds.
        if !read_once {
            source.origin = source.info.start_time;
        }
        Ok(source)
    }

    /// Waits for a network stream's first frame and returns the stream's properties from the
    /// log lines ffmpeg wrote before it. `started` is when ffmpeg started.
    fn read_stream_header(&mut self, started: Instant) -> Result<StreamInfo, CaptureError> {
        let Ok(first) = self.frame_infos.recv() else {
            // ffmpeg ended without a frame. Its log is complete once it has exited.
            self.finished = true;
            let _ = self.lock_child().wait();
            if let Some(thread) = self.log_thread.take() {
                let _ = thread.join();
            }
            let mut reason = format!(
                "no readable video stream (ffmpeg: {})",
                self.problem_lines()
            );
            if started.elapsed() >= STREAM_SILENCE {
                let silence = STREAM_SILENCE.as_secs();
                reason.push_str(&format!("; nothing arrived for {silence} s"));
            }
            return Err(CaptureError::Decode {
                path: PathBuf::from(&self.input),
                reason,
            });
        };
        let logged = self.record().input.clone();
        let info = StreamInfo {
            width: first.width,
            height: first.height,
            rotation: 0,
            frame_rate: logged.frame_rate,
            start_time: logged.start_time,
            duration: logged.duration,
            frame_count: None,
        };
        self.first_shown = Some(first);
        Ok(info)
    }

    fn record(&self) -> MutexGuard<'_, LogRecord> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns ffmpeg's last warning and error lines, joined by " / ".
    fn problem_lines(&self) -> String {
        let record = self.record();
        record
            .problems
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// Returns the probed stream properties.
    #[cfg(test)]
    pub(crate) fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Builds the error for a failed run, quoting ffmpeg's own messages.
    fn ffmpeg_error(&self, summary: &str) -> CaptureError {
        let log = self.problem_lines();
        let reason = if log.is_empty() {
            summary.to_owned()
        } else {
            format!("{summary}: {log}")
        };
        CaptureError::Ffmpeg {
            input: self.input.clone(),
            reason,
        }
    }

    /// Takes the logged facts of the frame just read and checks its size.
    fn next_show_info(&mut self) -> Result<ShowInfo, CaptureError> {
        if let Some(first) = self.first_shown.take() {
            return Ok(first);
        }
        // showinfo logs a frame before ffmpeg writes it, so its line is sent or on its way.
        let Ok(shown) = self.frame_infos.recv() else {
            self.finished = true;
            return Err(self.ffmpeg_error("ffmpeg logged no time for a decoded frame"));
        };
        let (width, height) = (self.info.width, self.info.height);
        if (shown.width, shown.height) != (width, height) {
            self.finished = true;
            let change = format!(
                "the frame size changed from {width}x{height} to {}x{} mid-stream, \
                 which is not supported",
                shown.width, shown.height
            );
            return Err(self.ffmpeg_error(&change));
        }
        Ok(shown)
    }

    /// Waits for ffmpeg after its output ended. A failed exit, output that ended inside a
    /// frame (`partial`), or a file that ended short of its stored frame count with decoding
    /// errors logged (a truncated download, say) becomes an error.
    fn finish(&mut self, partial: bool) -> Result<Option<Frame>, CaptureError> {
        self.finished = true;
        let status = self
            .lock_child()
            .wait()
            .map_err(|source| CaptureError::Io {
                path: PathBuf::from(&self.input),
                source,
            })?;
        // The log thread ends with ffmpeg's stderr, so the problem lines are complete now.
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        let frames = self.frames_read;
        if let Some(stored) = self.info.frame_count {
            if status.success() && frames < stored && self.record().errors > 0 {
                return Err(self.ffmpeg_error(&format!(
                    "the video ended after {frames} of its {stored} frames"
                )));
            }
        }
        if status.success() && !partial {
            return Ok(None);
        }
        let place = if partial { " inside a frame" } else { "" };
        Err(self.ffmpeg_error(&format!(
            "decoding stopped{place} after {frames} frames ({status})"
        )))
    }
}

/// Starts a thread that kills ffmpeg once `cancel` is set, so that a stop ends a read that
/// waits for output. The thread ends when the source is dropped.
fn end_when_cancelled(child: Weak<Mutex<Child>>, cancel: Arc<AtomicBool>) {
    let watch = move || loop {
        std::thread::sleep(CANCEL_POLL);
        let Some(child) = child.upgrade() else { return };
        if cancel.load(Ordering::SeqCst) {
            // Fails only when ffmpeg has already exited.
            let _ = child.lock().unwrap_or_else(PoisonError::into_inner).kill();
            return;
        }
    };
    // Without the thread a stop still works, only not while a read waits.
    let spawned = std::thread::Builder::new()
        .name("ffmpeg-cancel".into())
        .spawn(watch);
    if let Err(error) = spawned {
        tracing::warn!("cannot start the thread that stops ffmpeg: {error}");
    }
}

/// Starts the thread that reads ffmpeg's log, and returns it with the receiver of frame facts.
fn spawn_log_reader(
    stderr: ChildStderr,
    record: Arc<Mutex<LogRecord>>,
) -> io::Result<(JoinHandle<()>, Receiver<ShowInfo>)> {
    let (sender, frame_infos) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ffmpeg-log".into())
        .spawn(move || read_log(stderr, sender, record))?;
    Ok((thread, frame_infos))
}

/// How long ffmpeg looks at a network stream before reporting its format. Its default of
/// 5 s delays a live stream's first frame. One second still finds the size and rate of
/// MPEG-TS streams with MPEG-2 or H.264 video, and a stream whose first key frame comes later
/// is read until it arrives.
const STREAM_ANALYZE: Duration = Duration::from_secs(1);

/// How long a network stream may send nothing before ffmpeg gives up on it.
/// Without a limit, a wrong UDP address or a sender that stops leaves the run waiting for
/// ever.
const STREAM_SILENCE: Duration = Duration::from_secs(10);

/// Options for reading a network stream; none for files.
///
/// `-rw_timeout` bounds every protocol's reads and writes. UDP and RTP read through a
/// receiving thread that it does not cover, so they also get their own `-timeout` (which
/// other protocols read differently: for RTMP it would mean listening for a connection).
fn stream_options(input: &str) -> Vec<String> {
    if !is_stream_url(input) {
        return Vec::new();
    }
    let micros = |duration: Duration| duration.as_micros().to_string();
    let mut options = vec![
        "-analyzeduration".to_owned(),
        micros(STREAM_ANALYZE),
        "-rw_timeout".to_owned(),
        micros(STREAM_SILENCE),
    ];
    let scheme = input.split("://").next().unwrap_or_default();
    if ["udp", "rtp"]
        .iter()
        .any(|udp| scheme.eq_ignore_ascii_case(udp))
    {
        options.extend(["-timeout".to_owned(), micros(STREAM_SILENCE)]);
    }
    options
}

/// Builds the ffmpeg command that writes raw RGB frames to stdout and logs frame times.
fn ffmpeg_command(input: &str) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "level+info",
        ])
        // Keep the container's timestamps; the source subtracts the stream's start itself.
        .arg("-copyts")
        .args(stream_options(input))
        .args(["-i", input, "-map", "0:v:0", "-vf", "showinfo"])
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Fills `buffer` from `reader` and returns how many bytes it read before the end of input.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.finished {
            return Ok(None);
        }
        let (width, height) = (self.info.width, self.info.height);
        let mut pixels = vec![0; width as usize * height as usize * 3];
        let filled =
            read_full(&mut self.stdout, &mut pixels).map_err(|source| CaptureError::Io {
                path: PathBuf::from(&self.input),
                source,
            })?;
        if filled < pixels.len() {
            return self.finish(filled > 0);
        }

        let shown = self.next_show_info()?;
        let origin = *self.origin.get_or_insert(shown.pts_time);
        let image = RgbImage::from_raw(width, height, pixels)
            .expect("the buffer holds exactly width * height * 3 bytes");
        let frame = Frame {
            index: self.frames_read,
            timestamp: shown.pts_time - origin,
            path: None,
            image,
        };
        self.frames_read += 1;
        Ok(Some(frame))
    }

    fn description(&self) -> String {
        let kind = if self.is_live() { "stream" } else { "video" };
        let (width, height) = (self.info.width, self.info.height);
        match self.info.frame_rate {
            Some(rate) => format!("{kind} {} ({width}x{height}, {rate:.2} fps)", self.input),
            None => format!("{kind} {} ({width}x{height})", self.input),
        }
    }

    fn is_live(&self) -> bool {
        self.live
    }

    fn frame_rate(&self) -> Option<f64> {
        self.info.frame_rate
    }
}

impl Drop for VideoSource {
    /// Stops ffmpeg and reaps it, so that an early stop leaves no process behind.
    fn drop(&mut self) {
        // Killing fails only when ffmpeg has already exited, which `wait` then reaps.
        let mut child = self.lock_child();
        let _ = child.kill();
        let _ = child.wait();
        drop(child);
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Runs ffmpeg with `arguments` to make a test clip and returns its path.
    fn make_clip(folder: &Path, name: &str, arguments: &[&str]) -> String {
        let path = folder.join(name);
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(arguments)
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg could not make {name}");
        path.to_str().unwrap().to_owned()
    }

    /// Makes a 64x48 (landscape) test pattern clip of 10 frames at 10 fps.
    fn make_landscape_clip(folder: &Path) -> String {
        let source = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10",
            "-frames:v",
            "10",
        ];
        make_clip(
            folder,
            "landscape.mp4",
            &[&source[..], &["-pix_fmt", "yuv420p"]].concat(),
        )
    }

    fn read_all(source: &mut VideoSource) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(frame) = source.next_frame().unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn parse_showinfo_reads_time_and_size() {
        let line = "[Parsed_showinfo_0 @ 0x55d] [info] n:   3 pts:  10240 pts_time:1.25 \
                    pos:  48 fmt:yuv420p sar:1/1 s:48x64 i:P iskey:1 type:I";
        let expected = ShowInfo {
            pts_time: 1.25,
            width: 48,
            height: 64,
        };
        assert_eq!(parse_showinfo(line), Some(expected));
        assert_eq!(
            parse_showinfo("[Parsed_showinfo_0 @ 0x55d] [info] config in time_base: 1/10"),
            None
        );
        assert_eq!(parse_showinfo("[info] n: 1 pts_time:0.5 s:2x2"), None);
    }

    #[test]
    fn parse_rational_handles_unknown_rates() {
        assert!((parse_rational("24000/1001").unwrap() - 23.976).abs() < 1e-3);
        assert_eq!(parse_rational("0/0"), None);
        assert_eq!(parse_rational("30"), None);
    }

    #[test]
    fn rotated_clip_comes_out_rotated() {
        let folder = tempfile::tempdir().unwrap();
        let landscape = make_landscape_clip(folder.path());
        // ffmpeg 5.1 turns the `rotate` tag into a display matrix when copying the stream.
        let rotated = make_clip(
            folder.path(),
            "rotated.mp4",
            &["-i", &landscape, "-c", "copy", "-metadata:s:v", "rotate=90"],
        );

        let mut source = VideoSource::open(&rotated).unwrap();
        assert_eq!(source.info().rotation.abs(), 90);
        let frames = read_all(&mut source);
        assert_eq!(frames.len(), 10);
        for frame in &frames {
            assert_eq!(frame.image.dimensions(), (48, 64));
        }
    }

    #[test]
    fn timestamps_follow_variable_frame_rate_and_late_start() {
        let folder = tempfile::tempdir().unwrap();
        // testsrc counts time in tenths of a second. Frame n is shown at n/10 s, plus 0.5 s from
        // frame 5 on, and the stream starts at 3 s.
        let arguments = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10",
            "-frames:v",
            "10",
            "-vf",
            "setpts=N+5*gte(N\\,5)",
            "-fps_mode",
            "passthrough",
            "-output_ts_offset",
            "3",
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
        ];
        let clip = make_clip(folder.path(), "vfr.mkv", &arguments);

        let mut source = VideoSource::open(&clip).unwrap();
        let timestamps: Vec<f64> = read_all(&mut source)
            .iter()
            .map(|frame| frame.timestamp)
            .collect();
        let expected = [0.0, 0.1, 0.2, 0.3, 0.4, 1.0, 1.1, 1.2, 1.3, 1.4];
        assert_eq!(timestamps.len(), expected.len(), "{timestamps:?}");
        for (got, want) in timestamps.iter().zip(expected) {
            assert!(
                (got - want).abs() < 0.002,
                "got {timestamps:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn non_video_file_names_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("notes.mp4");
        std::fs::write(&path, "these are not video frames\n".repeat(50)).unwrap();
        let Err(error) = VideoSource::open(path.to_str().unwrap()) else {
            panic!("a text file opened as video");
        };
        assert!(matches!(error, CaptureError::Decode { .. }), "{error:?}");
        assert!(error.to_string().contains("notes.mp4"), "{error}");
        assert!(error.to_string().contains("ffprobe"), "{error}");
    }

    #[test]
    fn log_lines_lose_addresses() {
        let line = "[mov,mp4,m4a @ 0x562ed9872940] stream 0: partial file";
        assert_eq!(
            without_addresses(line),
            "[mov,mp4,m4a] stream 0: partial file"
        );
        assert_eq!(without_addresses("no tag here"), "no tag here");
    }

    #[test]
    fn missing_video_is_not_found() {
        let Err(error) = VideoSource::open("no/such/clip.mp4") else {
            panic!("a missing file opened");
        };
        assert!(matches!(error, CaptureError::NotFound { .. }), "{error:?}");
    }

    #[test]
    fn ffmpeg_dying_mid_stream_is_an_error() {
        let folder = tempfile::tempdir().unwrap();
        let source = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-frames:v",
            "600",
        ];
        let arguments = [&source[..], &["-pix_fmt", "yuv420p"]].concat();
        let clip = make_clip(folder.path(), "long.mp4", &arguments);

        let mut video = VideoSource::open(&clip).unwrap();
        assert!(video.next_frame().unwrap().is_some());
        let status = Command::new("kill")
            .args(["-KILL", &video.lock_child().id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // Frames already in the pipe still arrive; then the killed process is reported.
        let error = loop {
            match video.next_frame() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a killed ffmpeg looked like the end of the video"),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, CaptureError::Ffmpeg { .. }), "{error:?}");
        assert!(error.to_string().contains("long.mp4"), "{error}");
        assert!(error.to_string().contains("decoding stopped"), "{error}");
        assert!(video.next_frame().unwrap().is_none());
    }

    #[test]
    fn dropping_early_stops_ffmpeg() {
        let folder = tempfile::tempdir().unwrap();
        // 600 frames of 320x240 RGB are 138 MB, far more than the pipe buffers, so ffmpeg is
        // still blocked writing when the source is dropped.
        let source = [
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=30",
            "-frames:v",
            "600",
        ];
        let clip = make_clip(
            folder.path(),
            "long.mp4",
            &[&source[..], &["-pix_fmt", "yuv420p"]].concat(),
        );

        let mut video = VideoSource::open(&clip).unwrap();
        let pid = video.lock_child().id();
        assert!(video.next_frame().unwrap().is_some());
        let started = Instant::now();
        drop(video);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "dropping took {:?}",
            started.elapsed()
        );
        // A reaped process has no /proc entry; a zombie would keep one.
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} was not reaped"
        );
    }

    #[test]
    fn stream_options_apply_to_urls_only() {
        assert!(stream_options("clip.mp4").is_empty());
        let http = stream_options("http://127.0.0.1:8000/clip.mp4");
        assert_eq!(
            http,
            ["-analyzeduration", "1000000", "-rw_timeout", "10000000"]
        );
        // UDP's receiving thread needs its own limit; RTMP must not get `-timeout`, which
        // would make ffmpeg listen instead of connect.
        let udp = stream_options("UDP://127.0.0.1:5000");
        assert_eq!(&udp[4..], ["-timeout", "10000000"]);
        assert_eq!(stream_options("rtmp://127.0.0.1/live").len(), 4);
    }

    #[test]
    fn logged_input_reads_header_and_rate() {
        let mut input = LoggedInput::default();
        let lines = [
            "[info]   Duration: 00:01:19.69, start: 0.120000, bitrate: 663 kb/s",
            "[Parsed_showinfo_0 @ 0x56] [info] config in time_base: 1/24000, \
             frame_rate: 24000/1001",
            "[Parsed_showinfo_0 @ 0x56] [info] config out time_base: 0/0, frame_rate: 0/0",
            "[info]   Duration: N/A, start: 9.000000, bitrate: N/A",
        ];
        for line in lines {
            input.read_line(line);
        }
        assert!((input.duration.unwrap() - 79.69).abs() < 1e-9);
        assert_eq!(input.start_time, Some(0.12));
        assert!((input.frame_rate.unwrap() - 23.976).abs() < 1e-3);
    }

    #[test]
    fn logged_input_of_live_stream_has_no_duration() {
        let mut input = LoggedInput::default();
        input.read_line("[info]   Duration: N/A, start: 2.401000, bitrate: N/A");
        assert_eq!(input.duration, None);
        assert_eq!(input.start_time, Some(2.401));
        assert_eq!(parse_clock("N/A"), None);
        assert_eq!(parse_clock("01:02:03.5"), Some(3723.5));
    }
}
