//! Entry forms: turn the shapes models write into a body whose `return` is the result.
//!
//! Runs after the TypeScript transform, so type-only statements are already gone and "the only
//! statement" means the only one that runs. Rules, first match wins:
//!
//! 1. `export default <function | arrow | identifier>` (anywhere at top level): the export is
//!    removed and the function is called after the other top-level statements, as in a module.
//! 2. The only statement is a function or arrow expression (parenthesised or not): called.
//! 3. The only statement is a function declaration: called.
//! 4. The last statement is a bare function or arrow expression: called. If it is a call of one
//!    (an IIFE) or of a top-level binding, like `main();` or `await main();`, it becomes
//!    `return <call>` so its value is the result.
//! 5. A top-level `function main` that nothing calls: called.
//!
//! Otherwise the script is a body as written.
//!
//! "Called" means the body ends with `return <the function>` and [`Entry::Call`] tells the
//! wrapper to call what the body returns, in its own last line. That line has no source-map
//! entry, so the wrapper's call frame is dropped from mapped stacks; a call written into the body
//! would show up as a frame at the function's closing brace.

use oxc::{
    allocator::{TakeIn, Vec as ArenaVec},
    ast::ast::{
        ExportDefaultDeclarationKind, Expression, FunctionType, ModuleDeclaration, Program,
        Statement,
    },
    ast::builder::AstBuilder,
    semantic::Scoping,
    span::{SPAN, Span},
};

use crate::modules::EXPORT_MESSAGE;

/// What the wrapper does with the body's completion value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The body's return value is the result.
    Body,
    /// The body returns the entry function; call it (no arguments) for the result.
    Call,
}

/// Rewrite `program` in place. Errors with the span of an `export default` that cannot be called
/// (the module check rejects those first, so this is a backstop).
pub(crate) fn rewrite<'a>(
    program: &mut Program<'a>,
    ast: &AstBuilder<'a>,
    scoping: &Scoping,
) -> Result<Entry, (Span, &'static str)> {
    let body = &mut program.body;
    body.retain(|statement| !is_noise(statement));

    // 1. export default
    if let Some(index) = body.iter().position(|s| {
        matches!(
            s.as_module_declaration(),
            Some(ModuleDeclaration::ExportDefaultDeclaration(_))
        )
    }) {
        let Statement::ExportDefaultDeclaration(export) = body.remove(index) else {
            return Ok(Entry::Body);
        };
        let span = export.span;
        return match export.unbox().declaration {
            ExportDefaultDeclarationKind::FunctionDeclaration(mut function) => {
                if let Some(id) = &function.id {
                    let name = id.name;
                    body.insert(index, Statement::FunctionDeclaration(function));
                    Ok(call_last(
                        body,
                        Expression::new_identifier(SPAN, name, ast),
                        ast,
                    ))
                } else {
                    function.r#type = FunctionType::FunctionExpression;
                    body.push(return_entry(
                        SPAN,
                        Expression::FunctionExpression(function),
                        ast,
                    ));
                    Ok(Entry::Call)
                }
            }
            ExportDefaultDeclarationKind::TSInterfaceDeclaration(_) => Ok(Entry::Body),
            kind if kind.is_expression() => Ok(call_last(body, kind.into_expression(), ast)),
            _ => Err((span, EXPORT_MESSAGE)),
        };
    }

    let single = body.len() == 1;
    let calls_entry = matches!(body.last(),
        Some(Statement::ExpressionStatement(s)) if is_entry_call(&s.expression, body));
    let Some(last) = body.last_mut() else {
        return Ok(Entry::Body);
    };
    match last {
        // 2. and 4., first part: a bare function expression.
        Statement::ExpressionStatement(statement)
            if statement.expression.without_parentheses().is_function() =>
        {
            let span = statement.span;
            let callee = statement.expression.take_in(ast);
            *last = return_entry(span, callee, ast);
            return Ok(Entry::Call);
        }
        // 3. a lone function declaration.
        Statement::FunctionDeclaration(function) if single && function.body.is_some() => {
            if let Some(id) = &function.id {
                let callee = Expression::new_identifier(SPAN, id.name, ast);
                body.push(return_entry(SPAN, callee, ast));
                return Ok(Entry::Call);
            }
            return Ok(Entry::Body);
        }
        // 4., second part: the script calls its own entry point last.
        Statement::ExpressionStatement(statement) if calls_entry => {
            let span = statement.span;
            let expression = statement.expression.take_in(ast);
            *last = Statement::new_return_statement(span, Some(expression), ast);
            return Ok(Entry::Body);
        }
        _ => {}
    }

    // 5. an uncalled `function main`.
    let uncalled_main = body.iter().any(|s| {
        matches!(s, Statement::FunctionDeclaration(f)
        if f.body.is_some()
            && f.id.as_ref().is_some_and(|id| {
                id.name == "main"
                    && id.symbol_id.get().is_some_and(|sym| scoping.symbol_is_unused(sym))
            }))
    });
    if uncalled_main {
        let callee = Expression::new_identifier(SPAN, "main", ast);
        body.push(return_entry(SPAN, callee, ast));
        return Ok(Entry::Call);
    }
    Ok(Entry::Body)
}

/// Top-level statements that do nothing and must not reach a function body: empty statements,
/// and module declarations other than `export default`. The module check let only type-only
/// ones through (`export {}`, `export { type A }`, ...), and the transform removes most of those.
fn is_noise(statement: &Statement<'_>) -> bool {
    match statement {
        Statement::EmptyStatement(_) => true,
        _ => statement.as_module_declaration().is_some_and(|module| {
            !matches!(module, ModuleDeclaration::ExportDefaultDeclaration(_))
        }),
    }
}

/// `f()`, `await f()`, `(async () => {})()`, where `f` is declared at the top level of `body`
/// (not merely `declare`d: those are gone by now).
fn is_entry_call(expression: &Expression<'_>, body: &[Statement<'_>]) -> bool {
    let Some(callee) = callee(expression) else {
        return false;
    };
    match callee {
        callee if callee.is_function() => true,
        Expression::Identifier(ident) => body.iter().any(|s| declares(s, ident.name.as_str())),
        _ => false,
    }
}

/// The callee of `f()` or `await f()`, without parentheses.
fn callee<'e, 'a>(expression: &'e Expression<'a>) -> Option<&'e Expression<'a>> {
    let mut expression = expression.without_parentheses();
    if let Expression::AwaitExpression(await_expression) = expression {
        expression = await_expression.argument.without_parentheses();
    }
    let Expression::CallExpression(call) = expression else {
        return None;
    };
    Some(call.callee.without_parentheses())
}

/// Return `callee` from the end of `body` to have it called; if the script already calls it last
/// (`export default async function main() {...}` then `main();`), return that call's value
/// instead of calling twice.
fn call_last<'a>(
    body: &mut ArenaVec<'a, Statement<'a>>,
    callee: Expression<'a>,
    ast: &AstBuilder<'a>,
) -> Entry {
    if let Expression::Identifier(name) = callee.without_parentheses()
        && let Some(Statement::ExpressionStatement(last)) = body.last_mut()
        && let Some(Expression::Identifier(called)) = self::callee(&last.expression)
        && called.name == name.name
    {
        let span = last.span;
        let expression = last.expression.take_in(ast);
        if let Some(slot) = body.last_mut() {
            *slot = Statement::new_return_statement(span, Some(expression), ast);
        }
        return Entry::Body;
    }
    body.push(return_entry(SPAN, callee, ast));
    Entry::Call
}

/// Whether `statement` declares `name` (as a function, class or simple variable).
fn declares(statement: &Statement<'_>, name: &str) -> bool {
    match statement {
        Statement::FunctionDeclaration(f) => f.id.as_ref().is_some_and(|id| id.name == name),
        Statement::ClassDeclaration(c) => c.id.as_ref().is_some_and(|id| id.name == name),
        Statement::VariableDeclaration(v) => v.declarations.iter().any(|d| {
            d.id.get_binding_identifier()
                .is_some_and(|id| id.name == name)
        }),
        _ => false,
    }
}

fn return_entry<'a>(span: Span, callee: Expression<'a>, ast: &AstBuilder<'a>) -> Statement<'a> {
    Statement::new_return_statement(span, Some(callee), ast)
}
