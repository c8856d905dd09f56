//! The identity of a prepared dataset: a digest of its classes and of each split's
//! list, so that a run can tell that the data it resumes or is tested on is the data
//! it trained on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::format::Split;

/// Digests (SHA-256, first 16 hex digits) of a prepared dataset's class labels and of
/// each split's `(image, class)` list, with the lists' lengths. Written by prep to
/// `prep-report.json`, recomputed by [`ProcessedDataset::fingerprint`](crate::ProcessedDataset::fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFingerprint {
    /// Digest of the class labels in id order.
    pub classes: String,
    /// Number of classes.
    pub num_classes: usize,
    /// Digest of the `train`, `val` and `test` lists, in that order.
    pub splits: [String; 3],
    /// Images in `train`, `val` and `test`.
    pub images: [usize; 3],
}

fn digest(parts: impl Iterator<Item = String>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so no two different lists hash the same text.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl DatasetFingerprint {
    /// The fingerprint of class `labels` and the `(image file name, class)` lists of
    /// train, val and test. The order of a list counts: it is the file order.
    pub fn of(labels: &[&str], lists: &[Vec<(String, usize)>; 3]) -> Self {
        Self {
            classes: digest(labels.iter().map(|label| label.to_string())),
            num_classes: labels.len(),
            splits: lists
                .each_ref()
                .map(|list| digest(list.iter().map(|(name, class)| format!("{name}\t{class}")))),
            images: lists.each_ref().map(Vec::len),
        }
    }

    /// What differs from `earlier`, one phrase each (empty when nothing does):
    /// `"the classes (12, were 10)"`, `"the test split (40 images, was 38)"`.
    pub fn changes_since(&self, earlier: &DatasetFingerprint) -> Vec<String> {
        let mut changes = Vec::new();
        if self.classes != earlier.classes {
            changes.push(format!(
                "the classes ({}, were {})",
                self.num_classes, earlier.num_classes
            ));
        }
        for (index, split) in Split::ALL.iter().enumerate() {
            if self.splits[index] != earlier.splits[index] {
                let (now, was) = (self.images[index], earlier.images[index]);
                let same = if now == was { ", other images" } else { "" };
                let noun = if now == 1 { "image" } else { "images" };
                changes.push(format!("the {split} split ({now} {noun}, was {was}{same})"));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<(String, usize)> {
        names.iter().map(|name| (name.to_string(), 0)).collect()
    }

    #[test]
    fn a_moved_image_is_a_change_of_both_splits() {
        let before =
            DatasetFingerprint::of(&["a", "b"], &[list(&["x", "y"]), list(&["z"]), list(&[])]);
        let same =
            DatasetFingerprint::of(&["a", "b"], &[list(&["x", "y"]), list(&["z"]), list(&[])]);
        assert!(same.changes_since(&before).is_empty());
        let moved =
            DatasetFingerprint::of(&["a", "b"], &[list(&["x"]), list(&["z"]), list(&["y"])]);
        assert_eq!(
            moved.changes_since(&before),
            [
                "the train split (1 image, was 2)",
                "the test split (1 image, was 0)"
            ]
        );
        let relabelled =
            DatasetFingerprint::of(&["a", "c"], &[list(&["x", "y"]), list(&["z"]), list(&[])]);
        assert_eq!(
            relabelled.changes_since(&before),
            ["the classes (2, were 2)"]
        );
        // A list's entries do not run into each other.
        let joined = DatasetFingerprint::of(&["ab"], &[list(&[]), list(&[]), list(&[])]);
        let split = DatasetFingerprint::of(&["a", "b"], &[list(&[]), list(&[]), list(&[])]);
        assert_ne!(joined.classes, split.classes);
    }
}
