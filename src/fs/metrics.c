/*
 * metrics.c — the metrics file at the mount's root: the Prometheus text
 * exposition format (version 0.0.4), rendered at each open, one sample
 * per database (label db):
 *
 *   sqlenvfs_replica_lag_seconds       how long the oldest byte not yet in
 *                                      the replica has waited (0: none)
 *   sqlenvfs_replica_backlog_bytes     archived or backed up, not yet shipped
 *   sqlenvfs_replica_up                1 while the replica is being shipped
 *                                      to (label state: off, shipping,
 *                                      stalled, lease lost, error)
 *   sqlenvfs_capture_latency_seconds   the archiver's capture latency since
 *                                      it started (label quantile: 0.5, 0.99, 1)
 *   sqlenvfs_archive_bytes             bytes of the database's WAL archive
 *   sqlenvfs_last_backup_age_seconds   age of its newest backup (absent
 *                                      when it has none)
 *
 * The replica samples are absent when no replica is configured.
 */
#include "fs.h"

#include <string.h>
#include <sys/stat.h>

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/store.h"

/* A label value: backslash, double quote and line feed escaped. */
static void
append_label(GString *out, const char *v)
{
  for (const char *p = v; *p; p++) {
    if (*p == '\\' || *p == '"')
      g_string_append_c(out, '\\');
    if (*p == '\n')
      g_string_append(out, "\\n");
    else
      g_string_append_c(out, *p);
  }
}

static void
head(GString *out, const char *name, const char *help)
{
  g_string_append_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void
sample(GString *out, const char *name, const char *db, const char *extra_key,
       const char *extra_value, double v)
{
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append_printf(out, "%s{db=\"", name);
  append_label(out, db);
  g_string_append_c(out, '"');
  if (extra_key) {
    g_string_append_printf(out, ",%s=\"", extra_key);
    append_label(out, extra_value);
    g_string_append_c(out, '"');
  }
  g_string_append_printf(out, "} %s\n", g_ascii_dtostr(num, sizeof num, v));
}

static guint64
dir_bytes(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *e;
  guint64 n = 0;
  while (d && (e = g_dir_read_name(d)) != NULL) {
    g_autofree char *p = g_build_filename(dir, e, NULL);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISREG(st.st_mode))
      n += (guint64)st.st_size;
  }
  return n;
}

char *
fs_metrics_render(Fs *fs, gsize *len)
{
  GString *out = g_string_new(NULL);
  g_autoptr(GPtrArray) dbs = sqlenvfs_root_list_dbs(fs->root);
  g_autoptr(GPtrArray) replica = sqlenvfs_shipper_status(fs->root);
  g_autoptr(GPtrArray) arch = fs->archiver ? sqlenvfs_archiver_status(fs->archiver) : NULL;
  g_autoptr(SqlenvfsListReport) copies = sqlenvfs_store_list_report(fs->root, NULL);
  GPtrArray *backups = copies ? copies->backups : NULL;
  gint64 now = g_get_real_time();

  if (replica->len > 0) {
    head(out, "sqlenvfs_replica_lag_seconds",
         "Seconds the oldest byte not yet in the replica has waited.");
    for (guint i = 0; i < replica->len; i++) {
      const SqlenvfsShipperDbStatus *st = replica->pdata[i];
      sample(out, "sqlenvfs_replica_lag_seconds", st->db, NULL, NULL,
             (double)st->lag_us / G_USEC_PER_SEC);
    }
    head(out, "sqlenvfs_replica_backlog_bytes", "Bytes archived or backed up, not yet shipped.");
    for (guint i = 0; i < replica->len; i++) {
      const SqlenvfsShipperDbStatus *st = replica->pdata[i];
      sample(out, "sqlenvfs_replica_backlog_bytes", st->db, NULL, NULL,
             (double)st->backlog_bytes);
    }
    head(out, "sqlenvfs_replica_up", "1 while the replica is being shipped to.");
    for (guint i = 0; i < replica->len; i++) {
      const SqlenvfsShipperDbStatus *st = replica->pdata[i];
      sample(out, "sqlenvfs_replica_up", st->db, "state", st->state,
             strcmp(st->state, "shipping") == 0 ? 1 : 0);
    }
  }
  head(out, "sqlenvfs_capture_latency_seconds",
       "Capture latency of the commits archived since the archiver started.");
  for (guint i = 0; arch && i < arch->len; i++) {
    const SqlenvfsArchiverDbStatus *st = arch->pdata[i];
    if (st->n_latency == 0)
      continue;
    sample(out, "sqlenvfs_capture_latency_seconds", st->db, "quantile", "0.5",
           (double)st->capture_p50_us / G_USEC_PER_SEC);
    sample(out, "sqlenvfs_capture_latency_seconds", st->db, "quantile", "0.99",
           (double)st->capture_p99_us / G_USEC_PER_SEC);
    sample(out, "sqlenvfs_capture_latency_seconds", st->db, "quantile", "1",
           (double)st->capture_max_us / G_USEC_PER_SEC);
  }
  head(out, "sqlenvfs_archive_bytes", "Bytes of the database's WAL archive.");
  for (guint i = 0; i < dbs->len; i++) {
    g_autofree char *dir = g_build_filename(sqlenvfs_root_path(fs->root, SQLENVFS_DIR_WAL),
                                            (char *)dbs->pdata[i], NULL);
    sample(out, "sqlenvfs_archive_bytes", dbs->pdata[i], NULL, NULL, (double)dir_bytes(dir));
  }
  head(out, "sqlenvfs_last_backup_age_seconds", "Age of the database's newest backup.");
  for (guint i = 0; i < dbs->len; i++) {
    for (guint k = backups ? backups->len : 0; k-- > 0;) {
      const SqlenvfsStoredCopy *c = backups->pdata[k];
      if (sqlenvfs_stored_copy_find(c, dbs->pdata[i]) == NULL)
        continue;
      sample(out, "sqlenvfs_last_backup_age_seconds", dbs->pdata[i], NULL, NULL,
             (double)MAX(now - c->time, 0) / G_USEC_PER_SEC);
      break;
    }
  }
  if (copies != NULL) {
    static const SqlenvfsCopyKind kinds[] = { SQLENVFS_KIND_BACKUP, SQLENVFS_KIND_SNAPSHOT };
    head(out, "sqlenvfs_damaged_copies",
         "Backups and snapshots whose MANIFEST cannot be read: no restore uses them.");
    for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
      guint n = 0;
      for (guint i = 0; i < copies->damaged->len; i++)
        n += ((const SqlenvfsDamagedCopy *)copies->damaged->pdata[i])->kind == kinds[k];
      g_string_append_printf(out, "sqlenvfs_damaged_copies{kind=\"%s\"} %u\n",
                             sqlenvfs_copy_kind_name(kinds[k]), n);
    }
  }
  *len = out->len;
  return g_string_free(out, FALSE);
}

char *
fs_metrics_text(Fs *fs)
{
  gsize len;
  return fs_metrics_render(fs, &len);
}
