/*
 * sqltext.h — reading the parts of a schema's SQL text that SQLite does not
 * give through a pragma.
 *
 * SQLite keeps each CREATE statement in sqlite_schema as it was written
 * (comments, quoting and case kept). pragma_index_xinfo names a key column
 * of an index but not an expression: the key `lower(email)` of
 * `CREATE UNIQUE INDEX u ON t(lower(email))` is only in that text.
 *
 * Pure functions of their input: no database, no allocation but the parts
 * they return.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Split @text at its commas outside parentheses, quotes and comments,
 * appending each part, trimmed of the blanks around it (an empty part
 * too), to @parts (an array that frees its strings with g_free): the
 * column definitions "a TEXT, b INT DEFAULT 'x,y'" give two. Returns
 * FALSE, with @parts as it was, when a parenthesis, quote or comment is
 * never closed, or one is closed that was not opened. */
gboolean sqlenvfs_sql_split_list(const char *text, GPtrArray *parts);

/* The key terms of a CREATE INDEX statement @sql, in order, appended to
 * @terms (an array that frees its strings with g_free): the text of each
 * term between the parentheses after ON <table>, split at the commas
 * outside parentheses, quotes and comments, trimmed of the blanks around
 * it and of a last ASC or DESC. A term keeps its COLLATE clause and any
 * comment inside it, so that it reads back as the expression when a
 * newline follows it ("(TERM\n)"). The WHERE clause of a partial index is
 * not a term.
 *
 * Returns FALSE, with @terms as it was, when @sql has no such list: no
 * parenthesis, one never closed, a quote or comment never closed, or an
 * empty term. */
gboolean sqlenvfs_sql_index_terms(const char *sql, GPtrArray *terms);

G_END_DECLS
