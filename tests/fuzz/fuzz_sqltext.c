/*
 * fuzz_sqltext.c — the key terms of a CREATE INDEX statement and the
 * split of a list at its top-level commas (src/core/sqltext.c) on
 * arbitrary text: the diff reads both from the sqlite_schema of a state
 * restored from disk.
 *
 * Beyond not crashing, it checks the contract of sqltext.h: a failure
 * leaves the array as it was; every term is non-empty, trimmed, and a part
 * of the input; and the terms, each followed by a newline and joined with
 * commas into a new statement, read back as as many terms, each the same
 * or the same less a last ASC or DESC.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/sqltext.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  fuzz_init_logging();
  return 0;
}

static void
fail(const char *what, const char *text)
{
  fprintf(stderr, "fuzz_sqltext: %s: input '%s'\n", what, text);
  abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree char *text = fuzz_strndup(data, size);
  g_autoptr(GPtrArray) terms = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) again = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GString) joined = g_string_new("CREATE INDEX i ON t(");

  {
    /* The list splitter alone: a refusal leaves the array as it was;
     * every part is trimmed and a part of the input. */
    g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(parts, g_strdup("before"));
    if (!sqlenvfs_sql_split_list(text, parts)) {
      if (parts->len != 1 || strcmp(parts->pdata[0], "before") != 0)
        fail("a refused list that changed the array", text);
    } else {
      for (guint i = 1; i < parts->len; i++) {
        const char *t = parts->pdata[i];
        gsize n = strlen(t);
        if ((n > 0 && (g_ascii_isspace(t[0]) || g_ascii_isspace(t[n - 1]))) ||
            strstr(text, t) == NULL)
          fail("a list part untrimmed or not in the input", text);
      }
    }
  }
  g_ptr_array_add(terms, g_strdup("before"));
  if (!sqlenvfs_sql_index_terms(text, terms)) {
    if (terms->len != 1 || strcmp(terms->pdata[0], "before") != 0)
      fail("a failure that changed the array", text);
    return 0;
  }
  if (terms->len < 2 || strcmp(terms->pdata[0], "before") != 0)
    fail("success without a term", text);
  for (guint i = 1; i < terms->len; i++) {
    const char *t = terms->pdata[i];
    gsize n = strlen(t);
    if (n == 0 || g_ascii_isspace(t[0]) || g_ascii_isspace(t[n - 1]))
      fail("an empty or untrimmed term", text);
    if (strstr(text, t) == NULL)
      fail("a term not in the input", text);
    g_string_append_printf(joined, "%s%s\n", i > 1 ? "," : "", t);
  }
  g_string_append_c(joined, ')');
  if (!sqlenvfs_sql_index_terms(joined->str, again) || again->len != terms->len - 1)
    fail("the terms do not read back as as many terms", text);
  for (guint i = 0; i < again->len; i++)
    if (strncmp(terms->pdata[i + 1], again->pdata[i], strlen(again->pdata[i])) != 0)
      fail("a term that reads back as another", text);
  return 0;
}
