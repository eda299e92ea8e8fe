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
        let (memory, access, ctx) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
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
        let (memory, access, _) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
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
        let (memory, access, _) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        Ok(memory.forget(&access, &id).await.map_err(to_wit))
    }
}

type Service = (
    std::sync::Arc<super::Memory>,
    super::Access,
    std::sync::Arc<SkillContext>,
);

/// The memory service and this skill's access: `denied` when its manifest
/// grants no namespace (a component may import `memory` without a grant;
/// every call then answers this), `unavailable` when the host has no memory.
fn service(state: &SkillState) -> Result<Service, wit::MemoryError> {
    let Some(ctx) = state.context::<SkillContext>() else {
        return Err(wit::MemoryError::Denied("this skill has no grants".into()));
    };
    let Some(grants) = ctx.memory.clone() else {
        return Err(wit::MemoryError::Denied(format!(
            "skill `{}` may use no memory: its manifest grants no namespace \
             (`memory_read`, `memory_write`)",
            ctx.skill
        )));
    };
    let Some(memory) = ctx.capabilities.memory.clone() else {
        return Err(wit::MemoryError::Unavailable(
            "this host has no memory backend".to_string(),
        ));
    };
    Ok((memory, super::Access::Skill(grants), ctx))
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
