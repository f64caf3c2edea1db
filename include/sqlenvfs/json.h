/*
 * json.h — a small streaming JSON writer for machine-readable output
 * (`info --json`, `list --json`, `status`, `doctor --json`).
 *
 * The writer appends to a GString and keeps a stack of open containers so
 * that commas and (when pretty) indentation come out right. It always
 * produces valid JSON text (RFC 8259):
 *   (1) strings are escaped: '"' and '\\', control characters (< 0x20) as
 *       \n \r \t \b \f or \u00XX; bytes that are not valid UTF-8 are
 *       replaced by U+FFFD, so any C string can be written;
 *   (2) doubles that are NaN or infinite are written as null;
 *   (3) a member key is written only inside an object, a bare value only
 *       inside an array or at the top (checked with g_return_if_fail).
 *
 * Usage:
 *   g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
 *   sqlenvfs_json_begin_object(j);
 *   sqlenvfs_json_member_string(j, "name", "app");
 *   sqlenvfs_json_key(j, "tables");
 *   sqlenvfs_json_begin_array(j);
 *   sqlenvfs_json_string(j, "t1");
 *   sqlenvfs_json_end_array(j);
 *   sqlenvfs_json_end_object(j);
 *   g_autofree char *text = sqlenvfs_json_finish(j);   // "{...}\n"
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _SqlenvfsJson SqlenvfsJson;

/* A new writer; @pretty: two-space indentation and one member per line. */
SqlenvfsJson *sqlenvfs_json_new(gboolean pretty);
void sqlenvfs_json_free(SqlenvfsJson *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsJson, sqlenvfs_json_free)

void sqlenvfs_json_begin_object(SqlenvfsJson *j);
void sqlenvfs_json_end_object(SqlenvfsJson *j);
void sqlenvfs_json_begin_array(SqlenvfsJson *j);
void sqlenvfs_json_end_array(SqlenvfsJson *j);

/* The key of the next member (inside an object); a value must follow. */
void sqlenvfs_json_key(SqlenvfsJson *j, const char *key);

/* Values. A NULL string is written as null. */
void sqlenvfs_json_string(SqlenvfsJson *j, const char *s);
void sqlenvfs_json_int(SqlenvfsJson *j, gint64 v);
void sqlenvfs_json_uint(SqlenvfsJson *j, guint64 v);
void sqlenvfs_json_double(SqlenvfsJson *j, double v);
void sqlenvfs_json_bool(SqlenvfsJson *j, gboolean v);
void sqlenvfs_json_null(SqlenvfsJson *j);

/* key + value in one call. */
void sqlenvfs_json_member_string(SqlenvfsJson *j, const char *key, const char *s);
void sqlenvfs_json_member_int(SqlenvfsJson *j, const char *key, gint64 v);
void sqlenvfs_json_member_uint(SqlenvfsJson *j, const char *key, guint64 v);
void sqlenvfs_json_member_double(SqlenvfsJson *j, const char *key, double v);
void sqlenvfs_json_member_bool(SqlenvfsJson *j, const char *key, gboolean v);
void sqlenvfs_json_member_null(SqlenvfsJson *j, const char *key);

/* The text written so far, with a final newline; the writer is left empty
 * and may be reused. Every container must have been closed. Newly allocated. */
char *sqlenvfs_json_finish(SqlenvfsJson *j);

/* Append @s as a quoted, escaped JSON string to @out (see (1)). NULL appends
 * null. For callers that build JSON by hand. */
void sqlenvfs_json_append_string(GString *out, const char *s);

G_END_DECLS
