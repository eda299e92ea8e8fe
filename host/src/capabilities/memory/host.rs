//! The host side of the `memory` interface: a skill's calls go to the
//! [`Memory`](super::Memory) service with the skill's own grants.

use super::{Hit, MemoryError, Metadata};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::memory as wit;
use crate::runtime::SkillState;

impl wit::Host for SkillState {
    async fn store(
        &mut self,
        text: String,
        namespace: String,
        metadata: wit::Metadata,
    ) -> wasmtime::Result<Result<String, wit::MemoryError>> {
        let Some((memory, access, ctx)) = service(self) else {
            return Ok(Err(not_configured()));
        };
        let source = format!("skill:{}", ctx.skill);
        let metadata = match to_metadata(metadata) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        Ok(memory
            .store(&access, &text, &namespace, metadata, &source)
            .await
            .map(|stored| stored.id)
            .map_err(to_wit))
    }

    async fn search(
        &mut self,
        query: String,
        scope: String,
        limit: u32,
        filter: wit::Metadata,
    ) -> wasmtime::Result<Result<Vec<wit::Hit>, wit::MemoryError>> {
        let Some((memory, access, _)) = service(self) else {
            return Ok(Err(not_configured()));
        };
        let filter = match to_metadata(filter) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        Ok(memory
            .search(&access, &query, &scope, limit as usize, filter)
            .await
            .map(|hits| hits.into_iter().map(to_wit_hit).collect())
            .map_err(to_wit))
    }

    async fn forget(&mut self, id: String) -> wasmtime::Result<Result<bool, wit::MemoryError>> {
        let Some((memory, access, _)) = service(self) else {
            return Ok(Err(not_configured()));
        };
        Ok(memory.forget(&access, &id).await.map_err(to_wit))
    }
}

type Service = (
    std::sync::Arc<super::Memory>,
    super::Access,
    std::sync::Arc<SkillContext>,
);

/// The memory service and this skill's access, when the host has memory.
fn service(state: &SkillState) -> Option<Service> {
    let ctx = state.context::<SkillContext>()?;
    let memory = ctx.capabilities.memory.clone()?;
    let access = super::Access::Skill(ctx.memory.clone()?);
    Some((memory, access, ctx))
}

fn not_configured() -> wit::MemoryError {
    wit::MemoryError::Unavailable("this host has no memory backend".to_string())
}

fn to_metadata(pairs: wit::Metadata) -> Result<Metadata, wit::MemoryError> {
    let mut out = Metadata::new();
    for (key, value) in pairs {
        if out.insert(key.clone(), value).is_some() {
            return Err(wit::MemoryError::Invalid(format!(
                "metadata key `{key}` is given twice"
            )));
        }
    }
    Ok(out)
}

fn to_wit(e: MemoryError) -> wit::MemoryError {
    match e {
        MemoryError::Invalid(m) => wit::MemoryError::Invalid(m),
        MemoryError::Denied(m) => wit::MemoryError::Denied(m),
        MemoryError::NotFound(_) => wit::MemoryError::Invalid(e.to_string()),
        MemoryError::Unavailable(_) => wit::MemoryError::Unavailable(e.to_string()),
    }
}

fn to_wit_hit(hit: Hit) -> wit::Hit {
    wit::Hit {
        id: hit.record.id,
        text: hit.record.text,
        namespace: hit.record.namespace,
        score: hit.score,
        bm25: hit.bm25,
        dense: hit.dense,
        metadata: hit.record.metadata.into_iter().collect(),
        created_at: hit.record.created_at_ms,
    }
}
