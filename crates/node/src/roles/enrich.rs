//! The enrichment worker: the process's model, and related tickets from its index (or an
//! indexer's `/search`).

use chatgptd_worker_enrich::EnrichService;

use crate::stack::Stack;

pub(super) async fn build(stack: &Stack) -> anyhow::Result<EnrichService> {
    let options = &stack.config.enrich;
    let related = stack.retriever("enrich", &options.search_url, &options.search_token_env);
    Ok(EnrichService::new(
        options,
        &stack.context,
        stack.model().await?,
        related,
    )?)
}
