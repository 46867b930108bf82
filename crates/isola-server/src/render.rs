//! The `execute` tool's result for MCP hosts: the record as a model reads it
//! ([`isola_codemode::render`]) plus the structured record.

use isola_codemode::render::{record_text, structured};
use isola_protocol::ExecRecord;
use isola_typegen::Api;
use rmcp::model::{CallToolResult, ContentBlock};

/// The `execute` tool result: the text of [`record_text`], `isError` on failure, and the record
/// (without call arguments) as `structuredContent`.
pub fn exec_result(record: &ExecRecord, api: &Api) -> CallToolResult {
    let text = record_text(record, api);
    let mut result = if record.ok {
        CallToolResult::success(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::error(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(structured(record));
    result
}
