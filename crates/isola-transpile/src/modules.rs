//! Module syntax is not available in the sandbox: reject imports and exports (other than
//! type-only ones and the `export default` entry function) before the TypeScript transform runs.

use oxc::{
    ast::ast::{
        Declaration, ExportDefaultDeclarationKind, Expression, ImportDeclarationSpecifier,
        ImportOrExportKind, ModuleDeclaration, Program, Statement, TSModuleReference,
    },
    span::{GetSpan, Span},
    syntax::module_record::ModuleRecord,
};

pub(crate) const IMPORT_MESSAGE: &str = "imports are not available in the sandbox: the API is global \
     (e.g. `github.createIssue(...)`); remove this import";
pub(crate) const EXPORT_MESSAGE: &str = "exports are not needed: return the result instead";
const IMPORT_META_MESSAGE: &str =
    "`import.meta` is not available in the sandbox: scripts are not modules";

/// The earliest module-syntax violation: its span and message.
pub(crate) fn check(
    program: &Program<'_>,
    record: &ModuleRecord<'_>,
) -> Option<(Span, &'static str)> {
    let mut found: Option<(Span, &'static str)> = None;
    let mut note = |span: Span, message: &'static str| {
        if found.is_none_or(|(first, _)| span.start < first.start) {
            found = Some((span, message));
        }
    };
    for statement in &program.body {
        if let Some(message) = violation(statement) {
            note(statement.span(), message);
        }
    }
    for import in &record.dynamic_imports {
        note(import.span, IMPORT_MESSAGE);
    }
    for &span in &record.import_metas {
        note(span, IMPORT_META_MESSAGE);
    }
    found
}

fn violation(statement: &Statement<'_>) -> Option<&'static str> {
    let Some(module) = statement.as_module_declaration() else {
        return match statement {
            Statement::TSImportEqualsDeclaration(decl)
                if decl.import_kind == ImportOrExportKind::Value
                    && matches!(
                        decl.module_reference,
                        TSModuleReference::ExternalModuleReference(_)
                    ) =>
            {
                Some(IMPORT_MESSAGE)
            }
            _ => None,
        };
    };
    match module {
        ModuleDeclaration::ImportDeclaration(decl) => {
            let type_only = decl.import_kind == ImportOrExportKind::Type
                || decl.specifiers.as_ref().is_some_and(|specifiers| {
                    !specifiers.is_empty()
                        && specifiers.iter().all(|s| {
                            matches!(s, ImportDeclarationSpecifier::ImportSpecifier(s)
                                if s.import_kind == ImportOrExportKind::Type)
                        })
                });
            (!type_only).then_some(IMPORT_MESSAGE)
        }
        ModuleDeclaration::ExportNamedDeclaration(decl) => {
            let type_only = decl.export_kind == ImportOrExportKind::Type
                || decl
                    .specifiers
                    .iter()
                    .all(|s| s.export_kind == ImportOrExportKind::Type);
            (!type_only).then_some(EXPORT_MESSAGE)
        }
        ModuleDeclaration::ExportFromDeclaration(decl) => {
            (decl.export_kind != ImportOrExportKind::Type).then_some(EXPORT_MESSAGE)
        }
        ModuleDeclaration::ExportAllDeclaration(decl) => {
            (decl.export_kind != ImportOrExportKind::Type).then_some(EXPORT_MESSAGE)
        }
        ModuleDeclaration::ExportDeclaration(decl) => {
            (!is_type_declaration(&decl.declaration)).then_some(EXPORT_MESSAGE)
        }
        ModuleDeclaration::ExportDefaultDeclaration(decl) => match &decl.declaration {
            ExportDefaultDeclarationKind::FunctionDeclaration(_)
            | ExportDefaultDeclarationKind::TSInterfaceDeclaration(_) => None,
            ExportDefaultDeclarationKind::ClassDeclaration(_) => Some(EXPORT_MESSAGE),
            kind => match kind.as_expression().map(Expression::get_inner_expression) {
                Some(
                    Expression::ArrowFunctionExpression(_)
                    | Expression::FunctionExpression(_)
                    | Expression::Identifier(_),
                ) => None,
                _ => Some(EXPORT_MESSAGE),
            },
        },
        ModuleDeclaration::TSExportAssignment(_)
        | ModuleDeclaration::TSNamespaceExportDeclaration(_) => Some(EXPORT_MESSAGE),
    }
}

/// Declarations that leave no JavaScript behind.
fn is_type_declaration(declaration: &Declaration<'_>) -> bool {
    match declaration {
        Declaration::TSTypeAliasDeclaration(_) | Declaration::TSInterfaceDeclaration(_) => true,
        Declaration::VariableDeclaration(d) => d.declare,
        Declaration::FunctionDeclaration(f) => f.declare || f.body.is_none(),
        Declaration::ClassDeclaration(c) => c.declare,
        Declaration::TSEnumDeclaration(e) => e.declare,
        Declaration::TSNamespaceDeclaration(n) => n.declare,
        Declaration::TSExternalModuleDeclaration(_) | Declaration::TSGlobalDeclaration(_) => true,
        Declaration::TSImportEqualsDeclaration(d) => d.import_kind == ImportOrExportKind::Type,
    }
}

/// The byte ranges of the `export` (and `default`) keywords of `program`'s top-level export
/// declarations that [`check`] lets through (entry forms, type exports): from the statement's
/// start to its declaration's, or the whole statement when it declares nothing
/// (`export type { T }`, `import type`).
pub(crate) fn export_keywords(program: &Program<'_>) -> Vec<(u32, u32)> {
    program
        .body
        .iter()
        .filter_map(|statement| match statement.as_module_declaration()? {
            ModuleDeclaration::ExportDefaultDeclaration(d) => {
                Some((d.span.start, d.declaration.span().start))
            }
            ModuleDeclaration::ExportDeclaration(d) => {
                Some((d.span.start, d.declaration.span().start))
            }
            ModuleDeclaration::ExportNamedDeclaration(d) => Some((d.span.start, d.span.end)),
            ModuleDeclaration::ExportFromDeclaration(d) => Some((d.span.start, d.span.end)),
            ModuleDeclaration::ExportAllDeclaration(d) => Some((d.span.start, d.span.end)),
            // `import type`: a function body has no imports (and there is nothing to import).
            ModuleDeclaration::ImportDeclaration(d) => Some((d.span.start, d.span.end)),
            _ => None,
        })
        .collect()
}
