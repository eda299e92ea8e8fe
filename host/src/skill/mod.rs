//! What a skill is, to every layer of the host: its name, its manifest as
//! written, where that manifest lives in a component (and what else
//! [`inspect_component`] reads of one), and its content hash.
//!
//! This module sits low: the registry, the workflow compiler, the
//! capabilities and the interfaces above them all use it, and it uses
//! nothing of the host's but the bounded text of [`crate::runtime`].

mod component;
mod manifest;
mod name;

pub use component::{
    append_custom_section, append_manifest, inspect_component, replace_manifest, ComponentInfo,
    MANIFEST_SECTION,
};
pub(crate) use manifest::without_values;
pub use manifest::{Manifest, WorkflowOrigin};
pub use name::{SkillName, MAX_NAME_LEN};

use sha2::{Digest, Sha256};

/// Lower-case hex sha256 of `bytes`: a version's identity.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
