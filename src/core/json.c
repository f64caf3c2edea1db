/*
 * json.c — streaming JSON writer (contract and invariants in json.h).
 *
 * State: a stack of open containers, each remembering whether it already
 * holds an element (so the next one is preceded by a comma), and whether a
 * key has just been written (so the next value belongs to it).
 */
#include "sqlenvfs/json.h"

#include <math.h>
#include <string.h>

typedef struct {
  gboolean is_object;
  gboolean has_items;
} Frame;

struct _SqlenvfsJson {
  GString *out;
  GArray *stack; /* Frame */
  gboolean pretty;
  gboolean after_key;
};

SqlenvfsJson *
sqlenvfs_json_new(gboolean pretty)
{
  SqlenvfsJson *j = g_new0(SqlenvfsJson, 1);
  j->out = g_string_new(NULL);
  j->stack = g_array_new(FALSE, FALSE, sizeof(Frame));
  j->pretty = pretty;
  return j;
}

void
sqlenvfs_json_free(SqlenvfsJson *j)
{
  if (j == NULL)
    return;
  g_string_free(j->out, TRUE);
  g_array_unref(j->stack);
  g_free(j);
}

static Frame *
top(SqlenvfsJson *j)
{
  return j->stack->len ? &g_array_index(j->stack, Frame, j->stack->len - 1) : NULL;
}

static void
newline(SqlenvfsJson *j)
{
  if (!j->pretty)
    return;
  g_string_append_c(j->out, '\n');
  for (guint i = 0; i < j->stack->len; i++)
    g_string_append(j->out, "  ");
}

/* Before any element of a container (a member's key, or an array value). */
static void
separate(SqlenvfsJson *j)
{
  Frame *f = top(j);
  if (f == NULL)
    return;
  if (f->has_items)
    g_string_append_c(j->out, ',');
  f->has_items = TRUE;
  newline(j);
}

/* Before a value: inside an object it must follow a key. */
static gboolean
before_value(SqlenvfsJson *j)
{
  Frame *f = top(j);
  if (j->after_key) {
    j->after_key = FALSE;
    return TRUE;
  }
  g_return_val_if_fail(f == NULL || !f->is_object, FALSE);
  separate(j);
  return TRUE;
}

static void
open_container(SqlenvfsJson *j, gboolean is_object)
{
  Frame f = { is_object, FALSE };
  if (!before_value(j))
    return;
  g_string_append_c(j->out, is_object ? '{' : '[');
  g_array_append_val(j->stack, f);
}

static void
close_container(SqlenvfsJson *j, gboolean is_object)
{
  Frame *f = top(j);
  gboolean had_items;
  g_return_if_fail(f != NULL && f->is_object == is_object && !j->after_key);
  had_items = f->has_items;
  g_array_set_size(j->stack, j->stack->len - 1);
  if (had_items)
    newline(j);
  g_string_append_c(j->out, is_object ? '}' : ']');
}

void
sqlenvfs_json_begin_object(SqlenvfsJson *j)
{
  open_container(j, TRUE);
}

void
sqlenvfs_json_end_object(SqlenvfsJson *j)
{
  close_container(j, TRUE);
}

void
sqlenvfs_json_begin_array(SqlenvfsJson *j)
{
  open_container(j, FALSE);
}

void
sqlenvfs_json_end_array(SqlenvfsJson *j)
{
  close_container(j, FALSE);
}

void
sqlenvfs_json_key(SqlenvfsJson *j, const char *key)
{
  Frame *f = top(j);
  g_return_if_fail(key != NULL);
  g_return_if_fail(f != NULL && f->is_object && !j->after_key);
  separate(j);
  sqlenvfs_json_append_string(j->out, key);
  g_string_append(j->out, j->pretty ? ": " : ":");
  j->after_key = TRUE;
}

void
sqlenvfs_json_append_string(GString *out, const char *s)
{
  const char *p, *end;

  if (s == NULL) {
    g_string_append(out, "null");
    return;
  }
  g_string_append_c(out, '"');
  p = s;
  end = s + strlen(s);
  while (p < end) {
    const char *valid_end;
    /* Copy the longest valid UTF-8 run, escaping as we go. */
    g_utf8_validate(p, end - p, &valid_end);
    for (; p < valid_end; p++) {
      unsigned char c = (unsigned char)*p;
      switch (c) {
      case '"': g_string_append(out, "\\\""); break;
      case '\\': g_string_append(out, "\\\\"); break;
      case '\n': g_string_append(out, "\\n"); break;
      case '\r': g_string_append(out, "\\r"); break;
      case '\t': g_string_append(out, "\\t"); break;
      case '\b': g_string_append(out, "\\b"); break;
      case '\f': g_string_append(out, "\\f"); break;
      default:
        if (c < 0x20)
          g_string_append_printf(out, "\\u%04x", c);
        else
          g_string_append_c(out, (char)c);
      }
    }
    if (p < end) {
      /* One invalid byte: replace it and go on after it. */
      g_string_append(out, "\xef\xbf\xbd");
      p++;
    }
  }
  g_string_append_c(out, '"');
}

void
sqlenvfs_json_string(SqlenvfsJson *j, const char *s)
{
  if (before_value(j))
    sqlenvfs_json_append_string(j->out, s);
}

void
sqlenvfs_json_int(SqlenvfsJson *j, gint64 v)
{
  if (before_value(j))
    g_string_append_printf(j->out, "%" G_GINT64_FORMAT, v);
}

void
sqlenvfs_json_uint(SqlenvfsJson *j, guint64 v)
{
  if (before_value(j))
    g_string_append_printf(j->out, "%" G_GUINT64_FORMAT, v);
}

void
sqlenvfs_json_double(SqlenvfsJson *j, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  if (!before_value(j))
    return;
  if (!isfinite(v)) {
    g_string_append(j->out, "null");
    return;
  }
  /* Shortest round-tripping form, always with the C locale's '.'. */
  g_ascii_formatd(buf, sizeof buf, "%.17g", v);
  for (int prec = 1; prec < 17; prec++) {
    char shorter[G_ASCII_DTOSTR_BUF_SIZE];
    g_autofree char *fmt = g_strdup_printf("%%.%dg", prec);
    g_ascii_formatd(shorter, sizeof shorter, fmt, v);
    if (g_ascii_strtod(shorter, NULL) == v) {
      memcpy(buf, shorter, sizeof buf);
      break;
    }
  }
  g_string_append(j->out, buf);
}

void
sqlenvfs_json_bool(SqlenvfsJson *j, gboolean v)
{
  if (before_value(j))
    g_string_append(j->out, v ? "true" : "false");
}

void
sqlenvfs_json_null(SqlenvfsJson *j)
{
  if (before_value(j))
    g_string_append(j->out, "null");
}

void
sqlenvfs_json_member_string(SqlenvfsJson *j, const char *key, const char *s)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_string(j, s);
}

void
sqlenvfs_json_member_int(SqlenvfsJson *j, const char *key, gint64 v)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_int(j, v);
}

void
sqlenvfs_json_member_uint(SqlenvfsJson *j, const char *key, guint64 v)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_uint(j, v);
}

void
sqlenvfs_json_member_double(SqlenvfsJson *j, const char *key, double v)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_double(j, v);
}

void
sqlenvfs_json_member_bool(SqlenvfsJson *j, const char *key, gboolean v)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_bool(j, v);
}

void
sqlenvfs_json_member_null(SqlenvfsJson *j, const char *key)
{
  sqlenvfs_json_key(j, key);
  sqlenvfs_json_null(j);
}

char *
sqlenvfs_json_finish(SqlenvfsJson *j)
{
  char *text;
  g_return_val_if_fail(j->stack->len == 0 && !j->after_key, NULL);
  g_string_append_c(j->out, '\n');
  text = g_strdup(j->out->str);
  g_string_truncate(j->out, 0);
  return text;
}
