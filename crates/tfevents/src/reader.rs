//! Reading an event folder as the TensorBoard server does: files in name order, every
//! record's CRCs checked, and the purges that session-start events call for.

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    path::{Path, PathBuf},
};

use protobuf::Message;
use tensorboard_proto::{
    event::{Event, SessionLog_SessionStatus},
    graph::GraphDef,
};
use tensorboard_rs::masked_crc32c::masked_crc32c;

use crate::{
    error::{EventsError, Result, io_at},
    writer::event_files,
};

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
            .map_err(io_at(path))?;
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
                let graph =
                    GraphDef::parse_from_bytes(event.get_graph_def()).map_err(|source| {
                        EventsError::Protobuf {
                            path: path.to_path_buf(),
                            source,
                        }
                    })?;
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
        let corrupt = |what: &'static str| EventsError::Corrupt {
            path: path.to_path_buf(),
            what,
        };
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
        let event = Event::parse_from_bytes(data).map_err(|source| EventsError::Protobuf {
            path: path.to_path_buf(),
            source,
        })?;
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
