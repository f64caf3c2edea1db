/*
 * fuzz_manifest.c — the MANIFEST parser of backups and snapshots
 * (src/core/store.c) on arbitrary bytes, through the public read functions:
 * sqlenvfs_store_load(), sqlenvfs_store_list() and sqlenvfs_store_verify_all().
 *
 * The input is written as the MANIFEST of one backup of a private root.
 * Random bytes almost never carry a valid checksum, so each input is read
 * twice: as it is, and, when it parses as a key file with a checksum key,
 * once more sealed by sqlenvfs_store_manifest_seal() (the checksum the
 * writer would have given it), so that mutations reach the field checks
 * behind the checksum.
 *
 * Checks the contract of store.h: an entry either loads with at least one
 * database, each a valid name whose copy lies in the entry's directory,
 * sorted by name, or fails with INTEGRITY naming the MANIFEST; list skips
 * an entry that does not load, and verify reports it as a bad line; a
 * sealed MANIFEST is never refused for its checksum.
 */
#include "fuzzutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"

#define NAME "20261128T161400Z"

static SqlenvfsRoot *root;
static char *entry_dir;
static char *manifest_path;
static char *mismatch; /* how the error of a checksum that does not match starts */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  g_autofree char *dir = g_build_filename(fuzz_tmpdir(), "root", NULL);
  g_autofree char *prod = g_build_filename(dir, "data", "prod", NULL);

  fuzz_init_logging();
  if (!sqlenvfs_mkdir_p(prod, 0700, NULL))
    abort();
  root = sqlenvfs_root_open(dir, SQLENVFS_ROOT_MUST_EXIST, NULL);
  if (root == NULL)
    abort();
  entry_dir = g_build_filename(sqlenvfs_store_dir(root, SQLENVFS_KIND_BACKUP), NAME, NULL);
  if (!sqlenvfs_mkdir_p(entry_dir, 0700, NULL))
    abort();
  manifest_path = g_build_filename(entry_dir, "MANIFEST", NULL);
  mismatch = g_strdup_printf("read %s: its checksum is ", manifest_path);
  return 0;
}

static void
fail(const char *what)
{
  fprintf(stderr, "fuzz_manifest: %s\n", what);
  abort();
}

static void
check(const void *data, gsize size, gboolean sealed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsStoredCopy) copy = NULL;
  g_autoptr(GPtrArray) list = NULL;
  g_autoptr(SqlenvfsVerifyReport) report = sqlenvfs_verify_report_new();

  fuzz_write_file(manifest_path, data, size);
  copy = sqlenvfs_store_load(root, SQLENVFS_KIND_BACKUP, NAME, &error);
  if (copy == NULL) {
    if (!g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY) ||
        strstr(error->message, manifest_path) == NULL)
      fail("a MANIFEST refused without an error naming it");
    /* By the message's start: a value quoted later in it is any text. */
    if (sealed && g_str_has_prefix(error->message, mismatch))
      fail("a sealed MANIFEST refused for its checksum");
  } else {
    if (copy->dbs->len == 0)
      fail("an entry with no database");
    for (guint i = 0; i < copy->dbs->len; i++) {
      const SqlenvfsStoredDb *sdb = copy->dbs->pdata[i];
      g_autofree char *dir = g_path_get_dirname(sdb->path);
      if (!sqlenvfs_db_name_is_valid(sdb->db) || strcmp(dir, entry_dir) != 0)
        fail("a database name that is not valid or a copy outside the entry");
      if (i > 0 && strcmp(((SqlenvfsStoredDb *)copy->dbs->pdata[i - 1])->db, sdb->db) >= 0)
        fail("databases not sorted by name, or listed twice");
      if (sqlenvfs_stored_copy_find(copy, sdb->db) != sdb)
        fail("a database that cannot be found by its name");
    }
  }

  list = sqlenvfs_store_list(root, SQLENVFS_KIND_BACKUP, NULL);
  if (list == NULL || list->len != (copy ? 1u : 0u))
    fail("list disagrees with load");
  if (!sqlenvfs_store_verify_all(root, report, NULL))
    fail("verify failed on a readable store");
  if (report->checks->len == 0 || sqlenvfs_verify_report_n_bad(report) == 0)
    fail("verify passed a backup whose copies do not exist");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GKeyFile) back = g_key_file_new();
  g_autofree char *sealed = NULL;
  gsize sealed_len = 0;
  guint32 sum;

  check(data, size, FALSE);
  /* Loaded as the reader loads it, so that the seal covers what it reads. */
  if (!g_key_file_load_from_data(kf, (const char *)data, size, G_KEY_FILE_NONE, NULL) ||
      !g_key_file_has_key(kf, "sqlenvfs-copy", "checksum", NULL))
    return 0;
  sum = sqlenvfs_store_manifest_seal(kf);
  sealed = g_key_file_to_data(kf, &sealed_len, NULL);
  if (sealed_len == size && memcmp(sealed, data, size) == 0)
    return 0;
  /* The seal holds only if the text reads back to the same keys and values:
   * reading drops a carriage return that ends a value, for one. */
  if (!g_key_file_load_from_data(back, sealed, sealed_len, G_KEY_FILE_NONE, NULL))
    fail("a sealed MANIFEST that is not a key file");
  check(sealed, sealed_len, sqlenvfs_store_manifest_seal(back) == sum);
  return 0;
}
