/*
 * fuzz_shipper_state.c — the reader of the shipper's resume state
 * (.sqlenvfs/replica-shipped, its layout at the top of src/core/shipper.c)
 * on arbitrary bytes, through sqlenvfs_shipper_state_load() as the shipper
 * and prune read it.
 *
 * Each input is written as the state file and read twice: as it is, and
 * sealed again (its last line replaced by the "end <crc32>" line of the
 * bytes before it, or one added), so that mutations reach the lines behind
 * the checksum. The url it is read for is the one its second line names
 * (or a fixed one). Checks:
 *   - a refused file gives an empty state;
 *   - every segment a part end is known for has a part shipped, with an
 *     end past 0, and the intent is one line;
 *   - the same file read for another url is refused;
 *   - the state accepted, written back in the layout shipper.c writes and
 *     read again, is the same state.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/util.h"
#include "../../src/core/shipper_int.h"

#define DEFAULT_URL "s3://bucket/prefix"

static char *state_path;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  fuzz_init_logging();
  state_path = g_build_filename(fuzz_tmpdir(), "replica-shipped", NULL);
  return 0;
}

static void
fail(const char *what, const char *detail)
{
  fprintf(stderr, "fuzz_shipper_state: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  abort();
}

static gboolean
u64_tables_equal(GHashTable *a, GHashTable *b)
{
  GHashTableIter it;
  gpointer k, v;

  if (g_hash_table_size(a) != g_hash_table_size(b))
    return FALSE;
  g_hash_table_iter_init(&it, a);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    guint64 *w = g_hash_table_lookup(b, k);
    if (w == NULL || *w != *(guint64 *)v)
      return FALSE;
  }
  return TRUE;
}

/* @st in the layout the shipper writes. */
static GString *
format_state(const char *url, const SqlenvfsShipperState *st)
{
  return sqlenvfs_shipper_state_format(url, st->shipped, st->intent);
}

static void
check_accepted(const char *url, SqlenvfsShipperState *st)
{
  GHashTableIter it;
  gpointer k, v;

  if (st->intent && strchr(st->intent, '\n'))
    fail("an intent of more than one line", st->intent);
  g_hash_table_iter_init(&it, st->parts_end);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    g_autofree char *prefix = g_strconcat(k, ".part-", NULL);
    GHashTableIter j;
    gpointer key;
    gboolean has_part = FALSE;
    if (*(guint64 *)v == 0)
      fail("a part end of 0", k);
    if (!g_str_has_suffix(k, ".seg"))
      fail("a part end for a key that is no segment", k);
    g_hash_table_iter_init(&j, st->shipped);
    while (!has_part && g_hash_table_iter_next(&j, &key, NULL))
      has_part = g_str_has_prefix(key, prefix);
    if (!has_part)
      fail("a part end for a segment with no part shipped", k);
  }

  /* Read for another url: refused. */
  {
    g_autofree char *other = g_strconcat(url, "-other", NULL);
    SqlenvfsShipperState o = { 0 };
    gboolean missing = FALSE;
    sqlenvfs_shipper_state_load(state_path, other, &o, &missing);
    if (!missing || g_hash_table_size(o.shipped) != 0)
      fail("a state read for another url", other);
    sqlenvfs_shipper_state_clear(&o);
  }

  /* Written back and read again: the same state. */
  {
    g_autoptr(GString) text = format_state(url, st);
    SqlenvfsShipperState again = { 0 };
    gboolean missing = TRUE;
    fuzz_write_file(state_path, text->str, text->len);
    sqlenvfs_shipper_state_load(state_path, url, &again, &missing);
    if (missing)
      fail("a state written back is refused", text->str);
    if (g_strcmp0(again.intent, st->intent) != 0)
      fail("the intent changes when written back", st->intent);
    if (!u64_tables_equal(again.shipped, st->shipped))
      fail("the objects shipped change when written back", text->str);
    if (!u64_tables_equal(again.parts_end, st->parts_end))
      fail("the part ends change when written back", text->str);
    sqlenvfs_shipper_state_clear(&again);
  }
}

static void
one(const char *data, gsize size, const char *url)
{
  SqlenvfsShipperState st = { 0 };
  gboolean missing = FALSE;

  fuzz_write_file(state_path, data, size);
  sqlenvfs_shipper_state_load(state_path, url, &st, &missing);
  if (st.shipped == NULL || st.parts_end == NULL)
    fail("a state without its tables", NULL);
  if (missing) {
    if (g_hash_table_size(st.shipped) != 0 || g_hash_table_size(st.parts_end) != 0 ||
        st.intent != NULL)
      fail("a refused state that is not empty", NULL);
  } else {
    check_accepted(url, &st);
  }
  sqlenvfs_shipper_state_clear(&st);
  sqlenvfs_shipper_state_clear(&st); /* clearing twice is allowed */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree char *url = NULL;
  g_autoptr(GString) sealed = NULL;
  gsize body = size;

  /* The url the second line names, else a fixed one. */
  {
    const char *nl = memchr(data, '\n', size);
    if (nl != NULL && (gsize)(nl + 1 - (const char *)data) + 4 <= size &&
        memcmp(nl + 1, "url ", 4) == 0) {
      const char *u = nl + 5;
      const char *e = memchr(u, '\n', size - (gsize)(u - (const char *)data));
      gsize n = e ? (gsize)(e - u) : size - (gsize)(u - (const char *)data);
      if (memchr(u, '\0', n) == NULL)
        url = g_strndup(u, n);
    }
  }
  if (url == NULL)
    url = g_strdup(DEFAULT_URL);

  one((const char *)data, size, url);

  /* Sealed again: the "end" line (the last 13 bytes when they look like
   * one) replaced by the right one. */
  if (size >= 13 && memcmp(data + size - 13, "end ", 4) == 0 && data[size - 1] == '\n')
    body = size - 13;
  sealed = g_string_new_len((const char *)data, (gssize)body);
  g_string_append_printf(sealed, "end %08x\n", sqlenvfs_crc32(0, sealed->str, sealed->len));
  one(sealed->str, sealed->len, url);
  return 0;
}
