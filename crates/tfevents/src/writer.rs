//! [`EventWriter`]: one event file per writer, every error returned.

use std::{
    fs,
    io::BufWriter,
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
use tensorboard_rs::record_writer::RecordWriter;

use crate::error::{EventsError, Result, io_at};

/// One node of [`EventWriter::graph`].
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

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The event files of `dir`, in name order (the order TensorBoard reads them).
pub(crate) fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_at(dir))?
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
pub struct EventWriter {
    path: PathBuf,
    writer: RecordWriter<BufWriter<fs::File>>,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl EventWriter {
    /// Creates a new event file in `dir`, named so that it sorts after every event file
    /// already there (TensorBoard reads a folder's files in name order), ending in
    /// `.{suffix}` (the writing program's name, as TensorFlow's `filename_suffix`).
    pub fn create(dir: &Path, suffix: &str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut seconds = now() as u64;
        for entry in fs::read_dir(dir).map_err(io_at(dir))?.flatten() {
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
            "events.out.tfevents.{seconds:010}.{host}.{}.{suffix}",
            std::process::id()
        ));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_at(&path))?;
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

    fn write(&mut self, event: &Event) -> Result<()> {
        let bytes = event
            .write_to_bytes()
            .map_err(|source| EventsError::Protobuf {
                path: self.path.clone(),
                source,
            })?;
        self.writer.write(&bytes).map_err(io_at(&self.path))
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
            .map_err(|source| EventsError::Image {
                path: self.path.clone(),
                source,
            })?;
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
            .map_err(|source| EventsError::Protobuf {
                path: self.path.clone(),
                source,
            })?;
        let mut event = Event::new();
        event.set_wall_time(now());
        event.set_step(0);
        event.set_graph_def(bytes);
        self.write(&event)
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(io_at(&self.path))
    }
}
