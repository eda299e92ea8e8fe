//! The host side of the `kpi` interface: a skill reads the samples of a
//! series its `kpi_read` grant names, over a window that ends now on the
//! host's clock; samples of every label set of the name, oldest first.

use super::{KpiError, KpiStore, Labels};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::kpi as wit;
use crate::runtime::SkillState;
use std::sync::Arc;

type Result<T> = wasmtime::Result<std::result::Result<T, wit::KpiError>>;

impl wit::Host for SkillState {
    async fn series(&mut self, name: String, window_seconds: u64) -> Result<Vec<wit::Sample>> {
        let (store, _) = match service(self, &name) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        if window_seconds == 0 {
            return Ok(Err(wit::KpiError::Invalid(
                "the window must be at least one second".into(),
            )));
        }
        let now = store.clock().now_ms();
        let from = now.saturating_sub(window_seconds.saturating_mul(1000));
        let series = match store.read(&name, &Labels::new(), from, now).await {
            Ok(series) => series,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let mut samples: Vec<wit::Sample> = series
            .into_iter()
            .flat_map(|s| {
                let labels: Vec<(String, String)> = s.series.labels.into_iter().collect();
                s.points.into_iter().map(move |p| wit::Sample {
                    at: p.at,
                    value: p.value,
                    labels: labels.clone(),
                })
            })
            .collect();
        samples.sort_by_key(|s| s.at);
        Ok(Ok(samples))
    }
}

fn service(
    state: &SkillState,
    name: &str,
) -> std::result::Result<(Arc<KpiStore>, Arc<SkillContext>), wit::KpiError> {
    let Some(ctx) = state.context::<SkillContext>() else {
        return Err(wit::KpiError::Denied("this skill has no grants".into()));
    };
    match &ctx.kpi {
        None => {
            return Err(wit::KpiError::Denied(format!(
                "skill `{}` may not read KPIs: its manifest has no `kpi_read` grant (e.g. \
                 `kpi_read = [\"{name}\"]`)",
                ctx.skill
            )))
        }
        Some(grant) if !grant.allows(name) => {
            return Err(wit::KpiError::Denied(format!(
                "skill `{}` may not read series {name:?}: its `kpi_read` grant does not name it",
                ctx.skill
            )))
        }
        Some(_) => {}
    }
    let Some(store) = ctx.capabilities.kpi.clone() else {
        return Err(wit::KpiError::Unavailable(
            "this host records no KPI series".to_string(),
        ));
    };
    Ok((store, ctx))
}

fn to_wit(e: KpiError) -> wit::KpiError {
    match e {
        KpiError::Denied(m) => wit::KpiError::Denied(m),
        KpiError::Invalid(m) => wit::KpiError::Invalid(m),
        KpiError::NotFound(m) => wit::KpiError::NotFound(m),
        KpiError::Unavailable(m) => wit::KpiError::Unavailable(m),
    }
}
