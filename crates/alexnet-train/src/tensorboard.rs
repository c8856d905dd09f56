//! TensorBoard event files, through tensorboard-rs's record framing and protobuf types.
//!
//! tensorboard-rs's own `SummaryWriter` is not used: it names files by the second (two
//! writers in one second erase each other), panics on I/O errors, and its image call
//! swaps width and height. Here one writer per process owns a file whose name sorts
//! after every existing one, every error is returned, and a resumed run first writes a
//! session-start event at its first step, which makes TensorBoard drop the points an
//! interrupted run wrote past its last checkpoint (what PyTorch's `purge_step` does).
//! interrupted run wrote past its last checkpoint (what PyTorch's `purge_step` does).
//!
//! About 400 lines: the writer and the reader that checks it (with TensorBoard's purge
//! rules) belong together; a tenth is tests.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Read},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use image::RgbImage;
use protobuf::{Message, RepeatedField};
use tensorboard_proto::{
    attr_value::{AttrValue, AttrValue_ListValue},
    event::{Event, SessionLog, SessionLog_SessionStatus},
    graph::GraphDef,
    node_def::NodeDef,
    summary::{Summary, Summary_Image, Summary_Value, SummaryMetadata, SummaryMetadata_PluginData},
    tensor::TensorProto,
    tensor_shape::{TensorShapeProto, TensorShapeProto_Dim},
    types::DataType,
};
use tensorboard_rs::{masked_crc32c::masked_crc32c, record_writer::RecordWriter};

use crate::error::{Result, TrainError};

fn tb_error(path: &Path, reason: impl ToString) -> TrainError {
    TrainError::TensorBoard {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// One node of [`TensorBoard::graph`].
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// The layer's module path (`conv1.conv`).
    pub name: String,
    /// Its kind (`Conv2d`, `ReLU`, `Placeholder` for the input).
    pub op: String,
    /// The nodes it reads.
    pub inputs: Vec<String>,
    /// Its output shape, batch first (`-1`: any batch).
    pub output_shape: Vec<i64>,
    /// Its settings, as the text summary shows them.
    pub description: String,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The event files of `dir`, in name order (the order TensorBoard reads them).
fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|error| tb_error(dir, error))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents."))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// An open event file.
pub struct TensorBoard {
    path: PathBuf,
    writer: RecordWriter<BufWriter<fs::File>>,
}

impl std::fmt::Debug for TensorBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBoard")
            .field("path", &self.path)
            .finish()
    }
}

impl TensorBoard {
    /// Creates a new event file in `dir`, named so that it sorts after every event file
    /// already there (TensorBoard reads a folder's files in name order).
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|error| tb_error(dir, error))?;
        let mut seconds = now() as u64;
        for entry in fs::read_dir(dir)
            .map_err(|error| tb_error(dir, error))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(existing) = name
                .strip_prefix("events.out.tfevents.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|s| s.parse::<u64>().ok())
            {
                seconds = seconds.max(existing + 1);
            }
        }
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!(
            "events.out.tfevents.{seconds:010}.{host}.{}.alexnet",
            std::process::id()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| tb_error(&path, error))?;
        let mut board = Self {
            path,
            writer: RecordWriter::new(BufWriter::new(file)),
        };
        let mut event = Event::new();
        event.set_wall_time(now());
        event.set_file_version("brain.Event:2".into());
        board.write(&event)?;
        board.flush()?;
        Ok(board)
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        let bytes = event
            .write_to_bytes()
            .map_err(|error| tb_error(&self.path, error))?;
        self.writer
            .write(&bytes)
            .map_err(|error| tb_error(&self.path, error))
    }

    fn summary(&mut self, value: Summary_Value, step: u64) -> Result<()> {
        let mut summary = Summary::new();
        summary.set_value(RepeatedField::from_vec(vec![value]));
        let mut event = Event::new();
        event.set_wall_time(now());
        event.set_step(step as i64);
        event.set_summary(summary);
        self.write(&event)
    }

    /// Marks a (re)start at `step`: readers drop points at `step` and later written
    /// before this marker.
    pub fn session_start(&mut self, step: u64) -> Result<()> {
        let mut log = SessionLog::new();
        log.set_status(SessionLog_SessionStatus::START);
        let mut event = Event::new();
        event.set_wall_time(now());
        event.set_step(step as i64);
        event.set_session_log(log);
        self.write(&event)?;
        self.flush()
    }

    /// A scalar point.
    pub fn scalar(&mut self, tag: &str, value: f64, step: u64) -> Result<()> {
        let mut entry = Summary_Value::new();
        entry.set_tag(tag.into());
        entry.set_simple_value(value as f32);
        self.summary(entry, step)
    }

    /// An RGB image (stored as PNG).
    pub fn image(&mut self, tag: &str, image: &RgbImage, step: u64) -> Result<()> {
        let mut png = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|error| tb_error(&self.path, error))?;
        let mut encoded = Summary_Image::new();
        encoded.set_height(image.height() as i32);
        encoded.set_width(image.width() as i32);
        encoded.set_colorspace(3);
        encoded.set_encoded_image_string(png.into_inner());
        let mut entry = Summary_Value::new();
        entry.set_tag(tag.into());
        entry.set_image(encoded);
        self.summary(entry, step)
    }

    /// Text, shown in TensorBoard's Text tab (markdown; wrap tables in code fences).
    pub fn text(&mut self, tag: &str, text: &str, step: u64) -> Result<()> {
        let mut tensor = TensorProto::new();
        tensor.set_dtype(DataType::DT_STRING);
        tensor.set_string_val(RepeatedField::from_vec(vec![text.as_bytes().to_vec()]));
        let mut plugin = SummaryMetadata_PluginData::new();
        plugin.set_plugin_name("text".into());
        let mut metadata = SummaryMetadata::new();
        metadata.set_plugin_data(plugin);
        let mut entry = Summary_Value::new();
        entry.set_tag(tag.into());
        entry.set_metadata(metadata);
        entry.set_tensor(tensor);
        self.summary(entry, step)
    }

    /// The network as a graph for TensorBoard's Graphs tab: one node per layer, named
    /// by its module path with `/` for `.` (so `conv1/conv`, `conv1/relu` group under
    /// `conv1`), fed by the node before it, its output shape (batch `-1`) in the
    /// `_output_shapes` attribute TensorBoard shows, its settings in `description`.
    pub fn graph(&mut self, nodes: &[GraphNode]) -> Result<()> {
        let defs = nodes
            .iter()
            .map(|node| {
                let mut def = NodeDef::new();
                def.set_name(node.name.replace('.', "/"));
                def.set_op(node.op.clone());
                def.set_input(RepeatedField::from_vec(
                    node.inputs
                        .iter()
                        .map(|input| input.replace('.', "/"))
                        .collect(),
                ));
                let mut shape = TensorShapeProto::new();
                shape.set_dim(RepeatedField::from_vec(
                    node.output_shape
                        .iter()
                        .map(|&size| {
                            let mut dim = TensorShapeProto_Dim::new();
                            dim.set_size(size);
                            dim
                        })
                        .collect(),
                ));
                let mut shapes = AttrValue_ListValue::new();
                shapes.set_shape(RepeatedField::from_vec(vec![shape]));
                let mut shapes_attr = AttrValue::new();
                shapes_attr.set_list(shapes);
                let mut description = AttrValue::new();
                description.set_s(node.description.as_bytes().to_vec());
                def.mut_attr().insert("_output_shapes".into(), shapes_attr);
                def.mut_attr().insert("description".into(), description);
                def
            })
            .collect();
        let mut graph = GraphDef::new();
        graph.set_node(RepeatedField::from_vec(defs));
        let bytes = graph
            .write_to_bytes()
            .map_err(|error| tb_error(&self.path, error))?;
        let mut event = Event::new();
        event.set_wall_time(now());
        event.set_step(0);
        event.set_graph_def(bytes);
        self.write(&event)
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|error| tb_error(&self.path, error))
    }
}

/// What a reader of a TensorBoard folder sees, after the purges that session-start
/// events call for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    /// Scalar points per tag, in the order a reader keeps them.
    pub scalars: BTreeMap<String, Vec<(u64, f32)>>,
    /// Steps of image summaries per tag.
    pub images: BTreeMap<String, Vec<u64>>,
    /// The encoded images (PNG) of those summaries, with their steps.
    pub encoded_images: BTreeMap<String, Vec<(u64, Vec<u8>)>>,
    /// Text summaries per tag.
    pub texts: BTreeMap<String, Vec<(u64, String)>>,
    /// Session-start steps seen.
    pub session_starts: Vec<u64>,
    /// Node names of the last graph written, with `/` separators.
    pub graph_nodes: Vec<String>,
}

/// Reads every event file of `dir` in name order as the TensorBoard server does
/// (`plugin_event_accumulator`), checking each record's CRCs, and applies its purges: a
/// run's first `SessionLog.START` marks its beginning, and each later one drops every
/// point at its step and after that was read before it.
pub fn read_event_dir(dir: &Path) -> Result<EventLog> {
    read_events(&event_files(dir)?, true)
}

/// The session starts recorded in `dir`, or `None` when it holds no event files (a run
/// that never wrote curves). Unlike [`read_event_dir`] a damaged record ends its file
/// instead of failing: a process killed while writing one leaves a torn last record,
/// and a restart must go on.
pub fn session_starts(dir: &Path) -> Result<Option<Vec<u64>>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let files = event_files(dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    Ok(Some(read_events(&files, false)?.session_starts))
}

fn read_events(files: &[PathBuf], strict: bool) -> Result<EventLog> {
    let mut log = EventLog::default();
    for path in files {
        let mut bytes = Vec::new();
        fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|error| tb_error(path, error))?;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let Some((event, after)) = next_event(path, rest, strict)? else {
                break;
            };
            rest = after;
            let step = event.get_step().max(0) as u64;
            if event.has_session_log()
                && event.get_session_log().get_status() == SessionLog_SessionStatus::START
            {
                // The first start of a run is its beginning, not a restart.
                if !log.session_starts.is_empty() {
                    log.purge_from(step);
                }
                log.session_starts.push(step);
            }
            if event.has_summary() {
                log.add_summary(&event, step);
            }
            if event.has_graph_def() {
                let graph = GraphDef::parse_from_bytes(event.get_graph_def())
                    .map_err(|error| tb_error(path, error))?;
                log.graph_nodes = graph
                    .get_node()
                    .iter()
                    .map(|node| node.get_name().to_string())
                    .collect();
            }
        }
    }
    Ok(log)
}

/// The next record of an event file and what follows it; `None` at a damaged record
/// when not `strict`.
fn next_event<'a>(path: &Path, rest: &'a [u8], strict: bool) -> Result<Option<(Event, &'a [u8])>> {
    let parsed = (|| {
        let corrupt = |what: &str| tb_error(path, format!("corrupt record: {what}"));
        if rest.len() < 12 {
            return Err(corrupt("short header"));
        }
        let length =
            u64::from_le_bytes(rest[..8].try_into().map_err(|_| corrupt("header"))?) as usize;
        let header_crc = u32::from_le_bytes(rest[8..12].try_into().map_err(|_| corrupt("header"))?);
        if masked_crc32c(&rest[..8]) != header_crc {
            return Err(corrupt("header CRC"));
        }
        if rest.len() < 16 + length {
            return Err(corrupt("short body"));
        }
        let data = &rest[12..12 + length];
        let data_crc = u32::from_le_bytes(
            rest[12 + length..16 + length]
                .try_into()
                .map_err(|_| corrupt("footer"))?,
        );
        if masked_crc32c(data) != data_crc {
            return Err(corrupt("data CRC"));
        }
        let event = Event::parse_from_bytes(data).map_err(|error| tb_error(path, error))?;
        Ok((event, &rest[16 + length..]))
    })();
    match parsed {
        Ok(next) => Ok(Some(next)),
        Err(_) if !strict => Ok(None),
        Err(error) => Err(error),
    }
}

impl EventLog {
    /// Drops every point at `step` and later.
    fn purge_from(&mut self, step: u64) {
        for points in self.scalars.values_mut() {
            points.retain(|&(s, _)| s < step);
        }
        for steps in self.images.values_mut() {
            steps.retain(|&s| s < step);
        }
        for images in self.encoded_images.values_mut() {
            images.retain(|(s, _)| *s < step);
        }
        for texts in self.texts.values_mut() {
            texts.retain(|&(s, _)| s < step);
        }
    }

    fn add_summary(&mut self, event: &Event, step: u64) {
        for value in event.get_summary().get_value() {
            let tag = value.get_tag().to_string();
            if value.has_simple_value() {
                self.scalars
                    .entry(tag)
                    .or_default()
                    .push((step, value.get_simple_value()));
            } else if value.has_image() {
                let encoded = value.get_image().get_encoded_image_string().to_vec();
                self.encoded_images
                    .entry(tag.clone())
                    .or_default()
                    .push((step, encoded));
                self.images.entry(tag).or_default().push(step);
            } else if value.has_tensor() {
                let text = value
                    .get_tensor()
                    .get_string_val()
                    .iter()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .collect::<Vec<_>>()
                    .join("");
                self.texts.entry(tag).or_default().push((step, text));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_events_read_back_and_purge_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut first = TensorBoard::create(dir.path()).unwrap();
            first.session_start(0).unwrap();
            for step in 1..=4 {
                first.scalar("loss/train", step as f64, step).unwrap();
            }
            first.text("model", "AlexNet", 0).unwrap();
            first.image("preview", &RgbImage::new(3, 2), 0).unwrap();
            first.flush().unwrap();
        }
        // Two writers back to back get distinct, ordered files.
        let mut second = TensorBoard::create(dir.path()).unwrap();
        second.session_start(3).unwrap();
        second.scalar("loss/train", 30.0, 3).unwrap();
        second.scalar("loss/train", 40.0, 4).unwrap();
        second.flush().unwrap();
        let log = read_event_dir(dir.path()).unwrap();
        assert_eq!(
            log.scalars["loss/train"],
            vec![(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]
        );
        assert_eq!(log.texts["model"], vec![(0, "AlexNet".to_string())]);
        assert_eq!(log.images["preview"], vec![0]);
        assert_eq!(log.session_starts, vec![0, 3]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_folder_that_cannot_be_created_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let error = TensorBoard::create(&file.join("tb"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("tensorboard"), "{error}");
    }
}
