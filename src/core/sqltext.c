/*
 * sqltext.c — the key terms of a CREATE INDEX statement (sqltext.h).
 */
#include "sqlenvfs/sqltext.h"

#include <string.h>

/* The end of the quoted string, quoted name or comment that starts at @p,
 * NULL when it is never closed; @p itself when none starts there. A line
 * comment ends at its newline or at the end of the text. */
static const char *
skip_quoted(const char *p)
{
  const char *end;
  char close;

  switch (*p) {
  case '\'':
  case '"':
  case '`':
    close = *p;
    break;
  case '[':
    close = ']';
    break;
  case '-':
    if (p[1] != '-')
      return p;
    end = strchr(p, '\n');
    return end != NULL ? end + 1 : p + strlen(p);
  case '/':
    if (p[1] != '*')
      return p;
    end = strstr(p + 2, "*/");
    return end != NULL ? end + 2 : NULL;
  default:
    return p;
  }
  for (p++; *p != '\0'; p++) {
    if (*p != close)
      continue;
    if (close != ']' && p[1] == close) {
      p++; /* a doubled quote stands for itself */
      continue;
    }
    return p + 1;
  }
  return NULL;
}

static gboolean
is_word_char(char c)
{
  return g_ascii_isalnum(c) || c == '_' || c == '$' || (unsigned char) c >= 0x80;
}

/* Term [@start, @end) trimmed of blanks and of a last ASC or DESC; NULL
 * when nothing is left. */
static char *
term_text(const char *start, const char *end)
{
  while (start < end && g_ascii_isspace(*start))
    start++;
  while (end > start && g_ascii_isspace(end[-1]))
    end--;
  for (guint k = 0; k < 2; k++) {
    const char *word = k == 0 ? "ASC" : "DESC";
    gsize n = strlen(word);
    if ((gsize) (end - start) > n && g_ascii_strncasecmp(end - n, word, n) == 0 &&
        !is_word_char(end[-(gssize) n - 1])) {
      end -= n;
      while (end > start && g_ascii_isspace(end[-1]))
        end--;
      break;
    }
  }
  return end > start ? g_strndup(start, (gsize) (end - start)) : NULL;
}

gboolean
sqlenvfs_sql_index_terms(const char *sql, GPtrArray *terms)
{
  guint had = terms->len, depth = 0;
  const char *p = sql, *start = NULL;

  while (*p != '\0') {
    const char *q = skip_quoted(p);
    if (q == NULL)
      break; /* never closed */
    if (q != p) {
      p = q;
      continue;
    }
    if (*p == '(') {
      if (depth++ == 0)
        start = p + 1;
    } else if (depth > 0 && (*p == ')' || (*p == ',' && depth == 1))) {
      if (*p == ')' && --depth > 0) {
        p++;
        continue;
      }
      char *t = term_text(start, p);
      if (t == NULL)
        break;
      g_ptr_array_add(terms, t);
      if (*p == ')')
        return TRUE;
      start = p + 1;
    }
    p++;
  }
  g_ptr_array_set_size(terms, had); /* frees what was added */
  return FALSE;
}
