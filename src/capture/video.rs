//! Video files and network streams, decoded by the `ffmpeg` program into raw RGB frames.
//!
//! `ffprobe` first reads the stream's size, rotation, frame rate and start time. Then `ffmpeg`
//! writes `rgb24` frames to its stdout, while its `showinfo` filter logs each frame's
//! presentation time to stderr, where a thread parses it. `-fps_mode passthrough` makes ffmpeg
//! output every decoded frame exactly once, so frames and log lines pair up in order.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;
use serde::Deserialize;

use super::{is_stream_url, CaptureError, Frame, FrameSource};

/// Number of ffmpeg log lines kept to explain a failure.
const KEPT_LOG_LINES: usize = 8;

/// What `ffprobe` reports about the first video stream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StreamInfo {
    /// Frame width after applying the rotation metadata, as ffmpeg outputs it.
    pub(crate) width: u32,
    /// Frame height after applying the rotation metadata.
    pub(crate) height: u32,
    /// Rotation from the display matrix or the `rotate` tag, in degrees.
    pub(crate) rotation: i32,
    pub(crate) frame_rate: Option<f64>,
    /// Presentation time of the stream's first frame in seconds, when the container says.
    pub(crate) start_time: Option<f64>,
}

#[derive(Deserialize)]
struct ProbeOutput {
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

#[derive(Deserialize)]
struct ProbeStream {
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    start_time: Option<String>,
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
            "stream=width,height,avg_frame_rate,r_frame_rate,start_time\
             :stream_tags=rotate:stream_side_data=rotation",
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
        let message = last_lines(&String::from_utf8_lossy(&output.stderr), 3);
        return Err(decode_error(format!("not a readable video (ffprobe: {message})")));
    }
    let parsed: ProbeOutput = serde_json::from_slice(&output.stdout)
        .map_err(|error| decode_error(format!("unexpected ffprobe output: {error}")))?;
    let Some(stream) = parsed.streams.into_iter().next() else {
        return Err(decode_error("the file contains no video stream".into()));
    };
    stream_info(stream).ok_or_else(|| decode_error("ffprobe reports no frame size".into()))
}

fn stream_info(stream: ProbeStream) -> Option<StreamInfo> {
    let (width, height) = (stream.width?, stream.height?);
    if width == 0 || height == 0 {
        return None;
    }
    let rotation = rotation_degrees(&stream);
    // ffmpeg rotates frames by the display matrix on output, so a quarter turn swaps the sides.
    let quarter_turn = rotation.rem_euclid(180) == 90;
    let (width, height) = if quarter_turn { (height, width) } else { (width, height) };
    let frame_rate = [&stream.avg_frame_rate, &stream.r_frame_rate]
        .into_iter()
        .find_map(|rate| rate.as_deref().and_then(parse_rational));
    let start_time = stream.start_time.as_deref().and_then(|text| text.parse().ok());
    Some(StreamInfo {
        width,
        height,
        rotation,
        frame_rate,
        start_time,
    })
}

/// Reads the rotation from the display matrix side data, or else from the older `rotate` tag.
fn rotation_degrees(stream: &ProbeStream) -> i32 {
    let from_side_data = stream
        .side_data_list
        .iter()
        .find_map(|side_data| side_data.get("rotation")?.as_f64());
    let from_tag = || stream.tags.get("rotate").and_then(|text| text.trim().parse::<f64>().ok());
    from_side_data.or_else(from_tag).map_or(0, |degrees| degrees.round() as i32)
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
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
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

/// Reads ffmpeg's stderr: sends each frame's [`ShowInfo`] and keeps the last problem lines.
fn read_log(
    stderr: impl Read,
    frames: mpsc::Sender<ShowInfo>,
    problems: Arc<Mutex<VecDeque<String>>>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(info) = parse_showinfo(&line) {
            // The receiver is gone once the source is dropped; the rest of the log is unused.
            let _ = frames.send(info);
            continue;
        }
        // `-loglevel level+info` tags each line with its level.
        let is_problem = ["[error]", "[fatal]", "[panic]", "[warning]"]
            .iter()
            .any(|tag| line.contains(tag));
        if is_problem {
            let mut problems = problems.lock().unwrap_or_else(|poison| poison.into_inner());
            if problems.len() == KEPT_LOG_LINES {
                problems.pop_front();
            }
            problems.push_back(line.replace("[error] ", "").replace("[fatal] ", ""));
        }
    }
}

/// A running `ffmpeg` process that decodes one input into frames.
pub(crate) struct VideoSource {
    input: String,
    info: StreamInfo,
    child: Child,
    stdout: ChildStdout,
    frame_infos: Receiver<ShowInfo>,
    problems: Arc<Mutex<VecDeque<String>>>,
    log_thread: Option<JoinHandle<()>>,
    /// Presentation time that maps to timestamp 0.
    origin: Option<f64>,
    frames_read: u64,
    finished: bool,
}

impl VideoSource {
    /// Probes `input` and starts ffmpeg on it.
    pub(crate) fn open(input: &str) -> Result<VideoSource, CaptureError> {
        if !is_stream_url(input) && !Path::new(input).exists() {
            return Err(CaptureError::NotFound {
                path: PathBuf::from(input),
            });
        }
        let info = probe(input)?;
        let mut child = ffmpeg_command(input)
            .spawn()
            .map_err(|source| spawn_error("ffmpeg", source))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => (stdout, stderr),
            _ => unreachable!("stdout and stderr are piped by ffmpeg_command"),
        };

        let (sender, frame_infos) = mpsc::channel();
        let problems = Arc::new(Mutex::new(VecDeque::new()));
        let thread_problems = Arc::clone(&problems);
        let log_thread = std::thread::Builder::new()
            .name("ffmpeg-log".into())
            .spawn(move || read_log(stderr, sender, thread_problems))
            .map_err(|source| CaptureError::Io {
                path: PathBuf::from(input),
                source,
            })?;
        Ok(VideoSource {
            input: input.to_owned(),
            origin: info.start_time,
            info,
            child,
            stdout,
            frame_infos,
            problems,
            log_thread: Some(log_thread),
            frames_read: 0,
            finished: false,
        })
    }

    /// Returns the probed stream properties.
    #[cfg(test)]
    pub(crate) fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Builds the error for a failed run, quoting ffmpeg's own messages.
    fn ffmpeg_error(&self, what: &str) -> CaptureError {
        let problems = self.problems.lock().unwrap_or_else(|poison| poison.into_inner());
        let log = problems.iter().cloned().collect::<Vec<_>>().join(" / ");
        let reason = if log.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {log}")
        };
        CaptureError::Ffmpeg {
            input: self.input.clone(),
            reason,
        }
    }

    /// Waits for ffmpeg after its output ended; a failed exit becomes an error.
    fn finish(&mut self) -> Result<Option<Frame>, CaptureError> {
        self.finished = true;
        let status = self.child.wait().map_err(|source| CaptureError::Io {
            path: PathBuf::from(&self.input),
            source,
        })?;
        // The log thread ends with ffmpeg's stderr, so the problem lines are complete now.
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        if status.success() {
            Ok(None)
        } else {
            Err(self.ffmpeg_error(&format!("decoding stopped after {} frames ({status})", self.frames_read)))
        }
    }
}

/// Builds the ffmpeg command that writes raw RGB frames to stdout and logs frame times.
fn ffmpeg_command(input: &str) -> Command {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"])
        // Keep the container's timestamps; the source subtracts the stream's start itself.
        .arg("-copyts")
        .args(["-i", input, "-map", "0:v:0", "-vf", "showinfo"])
        .args(["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
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
        let filled = read_full(&mut self.stdout, &mut pixels).map_err(|source| CaptureError::Io {
            path: PathBuf::from(&self.input),
            source,
        })?;
        if filled == 0 {
            return self.finish();
        }
        if filled < pixels.len() {
            self.finished = true;
            return Err(self.ffmpeg_error("ffmpeg output ended inside a frame"));
        }

        // showinfo logs a frame before ffmpeg writes it, so its line is sent or on its way.
        let Ok(shown) = self.frame_infos.recv() else {
            self.finished = true;
            return Err(self.ffmpeg_error("ffmpeg logged no time for a decoded frame"));
        };
        if (shown.width, shown.height) != (width, height) {
            self.finished = true;
            let change = format!(
                "the frame size changed from {width}x{height} to {}x{} mid-stream, which is not supported",
                shown.width, shown.height
            );
            return Err(self.ffmpeg_error(&change));
        }
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
        is_stream_url(&self.input)
    }

    fn frame_rate(&self) -> Option<f64> {
        self.info.frame_rate
    }
}

impl Drop for VideoSource {
    /// Stops ffmpeg and reaps it, so that an early stop leaves no process behind.
    fn drop(&mut self) {
        // Killing fails only when ffmpeg has already exited, which `wait` then reaps.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
    }
}
