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

/* Split the list that starts at @p at its commas outside parentheses,
 * quotes and comments, each part trimmed of blanks, into @parts. With
 * @in_parens the list ends at the parenthesis that closes the one before
 * @p, else at the end of the text with every parenthesis closed. FALSE
 * (@parts with some parts added) when it does not end so, or a quote or
 * comment is never closed. */
static gboolean
split_list(const char *p, gboolean in_parens, GPtrArray *parts)
{
  const char *start = p;
  guint depth = 0;

  for (;;) {
    const char *q = skip_quoted(p);
    if (q == NULL)
      return FALSE; /* never closed */
    if (q != p) {
      p = q;
      continue;
    }
    if (*p == '\0' && (in_parens || depth > 0))
      return FALSE; /* the text ended inside a parenthesis */
    if (*p == '(') {
      depth++;
    } else if (*p == ')' && depth > 0) {
      depth--;
    } else if (*p == ')' && !in_parens) {
      return FALSE; /* one closed that was not opened */
    } else if ((*p == ',' && depth == 0) || *p == ')' || *p == '\0') {
      g_ptr_array_add(parts, g_strstrip(g_strndup(start, (gsize) (p - start))));
      if (*p != ',')
        return TRUE;
      start = p + 1;
    }
    p++;
  }
}

gboolean
sqlenvfs_sql_split_list(const char *text, GPtrArray *parts)
{
  guint had = parts->len;

  if (split_list(text, FALSE, parts))
    return TRUE;
  g_ptr_array_set_size(parts, had); /* frees what was added */
  return FALSE;
}

/* @term (trimmed) without a last ASC or DESC, in place; FALSE when it is
 * empty. */
static gboolean
strip_order(char *term)
{
  gsize len = strlen(term);

  for (guint k = 0; k < 2; k++) {
    const char *word = k == 0 ? "ASC" : "DESC";
    gsize n = strlen(word);
    if (len > n && g_ascii_strcasecmp(term + len - n, word) == 0 &&
        !is_word_char(term[len - n - 1])) {
      term[len - n] = '\0';
      g_strchomp(term);
      break;
    }
  }
  return term[0] != '\0';
}

gboolean
sqlenvfs_sql_index_terms(const char *sql, GPtrArray *terms)
{
  guint had = terms->len;
  const char *p = sql;

  /* The first parenthesis outside quotes and comments opens the list. */
  while (*p != '\0' && *p != '(') {
    const char *q = skip_quoted(p);
    if (q == NULL)
      break;
    p = q != p ? q : p + 1;
  }
  if (*p == '(' && split_list(p + 1, TRUE, terms)) {
    guint i;
    for (i = had; i < terms->len && strip_order(terms->pdata[i]); i++)
      ;
    if (i == terms->len)
      return TRUE;
  }
  g_ptr_array_set_size(terms, had); /* frees what was added */
  return FALSE;
}
