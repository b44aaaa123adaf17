//! The indexer: shards under the index root, and `/search` over them. Built before the
//! roles whose prompts search, so that they search through the indexer's own reader.

use chatgptd_worker_indexer::IndexerService;

use crate::stack::Stack;

pub(super) fn build(stack: &Stack) -> anyhow::Result<IndexerService> {
    let config = &stack.config;
    let service = IndexerService::new(&config.indexer, &config.index_root(), &stack.context)?;
    stack.share_search(service.search());
    Ok(service)
}
