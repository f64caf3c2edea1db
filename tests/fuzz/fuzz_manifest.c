/*
 * fuzz_manifest.c — the MANIFEST parser of backups and snapshots
 * (src/core/store.c) on arbitrary bytes, through the public read functions:
 * sqlenvfs_store_load(), sqlenvfs_store_list() and sqlenvfs_store_verify_all().
 *
 * The input is written as the MANIFEST of one backup of a private root.
 * Checks the contract of store.h: an entry either loads with at least one
 * database, each a valid name whose copy lies in the entry's directory,
 * sorted by name, or fails with INTEGRITY naming the MANIFEST; list skips
 * an entry that does not load, and verify reports it as a bad line.
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
  return 0;
}

static void
fail(const char *what)
{
  fprintf(stderr, "fuzz_manifest: %s\n", what);
  abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
  return 0;
}
