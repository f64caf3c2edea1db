/*
 * cmd_info.c — `sqlenvfs info`: what each database is, in text or JSON.
 */
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

static const char *
place_label(const SqlenvfsDbInfo *info)
{
  return g_str_equal(info->place, "dev") ? "development" : "production";
}

static void
print_text(const SqlenvfsDbInfo *info)
{
  g_autofree char *size = NULL, *wal = NULL, *logical = NULL, *when = NULL;
  g_autofree char *tables = NULL;

  printf("  %-12s %s\n", place_label(info), info->path);
  if (!info->exists) {
    g_autofree char *db = sqlenvfs_shell_word(info->db);
    if (g_str_equal(info->place, "dev"))
      printf("    (does not exist: create it with `sqlenvfs refresh-dev --db %s`)\n", db);
    else
      printf("    (does not exist)\n");
    return;
  }
  if (info->error) {
    printf("    (unreadable: see the error below)\n");
    return;
  }
  size = sqlenvfs_format_size(info->size);
  wal = sqlenvfs_format_size(info->wal_size);
  logical = sqlenvfs_format_size((guint64)(info->page_count * info->page_size));
  when = sqlenvfs_time_format_local(info->mtime_us);
  {
    GString *list = g_string_new(NULL);
    for (guint i = 0; i < info->tables->len; i++)
      g_string_append_printf(list, "%s%s", i ? ", " : "", (const char *)info->tables->pdata[i]);
    tables = g_string_free(list, FALSE);
  }
  if (info->environment)
    printf("    environment   %s (marked %s)\n", info->environment,
           info->marked_at ? info->marked_at : "at an unknown time");
  else
    printf("    environment   unmarked\n");
  if (info->wal_size)
    printf("    size          %s + WAL %s\n", size, wal);
  else
    printf("    size          %s\n", size);
  printf("    pages         %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT " bytes (%s)\n",
         info->page_count, info->page_size, logical);
  printf("    journal mode  %s\n", info->journal_mode ? info->journal_mode : "?");
  printf("    tables        %u%s%s\n", info->tables->len, info->tables->len ? ": " : "", tables);
  printf("    modified      %s\n", when);
}

static void
json_info(SqlenvfsJson *j, const SqlenvfsDbInfo *info)
{
  sqlenvfs_json_begin_object(j);
  sqlenvfs_json_member_string(j, "path", info->path);
  sqlenvfs_json_member_bool(j, "exists", info->exists);
  if (info->exists && info->error == NULL) {
    g_autofree char *when = sqlenvfs_time_format_iso(info->mtime_us);
    sqlenvfs_json_member_uint(j, "size_bytes", info->size);
    sqlenvfs_json_member_uint(j, "wal_size_bytes", info->wal_size);
    sqlenvfs_json_member_int(j, "page_count", info->page_count);
    sqlenvfs_json_member_int(j, "page_size", info->page_size);
    sqlenvfs_json_member_int(j, "db_size_bytes", info->page_count * info->page_size);
    sqlenvfs_json_member_int(j, "table_count", info->tables->len);
    sqlenvfs_json_key(j, "tables");
    sqlenvfs_json_begin_array(j);
    for (guint i = 0; i < info->tables->len; i++)
      sqlenvfs_json_string(j, info->tables->pdata[i]);
    sqlenvfs_json_end_array(j);
    sqlenvfs_json_member_string(j, "environment", info->environment);
    sqlenvfs_json_member_string(j, "marked_at", info->marked_at);
    sqlenvfs_json_member_string(j, "journal_mode", info->journal_mode);
    sqlenvfs_json_member_string(j, "modified", when);
  }
  sqlenvfs_json_member_string(j, "error", info->error);
  sqlenvfs_json_end_object(j);
}

int
cmd_info(int argc, char **argv)
{
  gboolean as_json = FALSE;
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(GPtrArray) infos = NULL;
  int status = CLI_OK;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &as_json, "Print JSON (times in UTC ISO 8601)", NULL },
    { NULL }
  };

  if (!cli_parse(&argc, &argv, "",
                 "Show every database of the root, production and development: path, size,\n"
                 "pages, tables, environment marker, journal mode and last modification\n"
                 "(local time in text, UTC in JSON). Opens databases read-only.",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("info", "unexpected argument '%s'", argv[1]);
  root = cli_open_root(SQLENVFS_ROOT_MUST_EXIST);
  if (root == NULL)
    return CLI_FAILED;
  infos = sqlenvfs_env_info(root);

  if (as_json) {
    g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
    g_autofree char *text = NULL;
    sqlenvfs_json_begin_object(j);
    sqlenvfs_json_member_string(j, "root", sqlenvfs_root_dir(root));
    sqlenvfs_json_key(j, "databases");
    sqlenvfs_json_begin_array(j);
    for (guint i = 0; i + 1 < infos->len; i += 2) {
      const SqlenvfsDbInfo *prod = infos->pdata[i], *dev = infos->pdata[i + 1];
      sqlenvfs_json_begin_object(j);
      sqlenvfs_json_member_string(j, "name", prod->db);
      sqlenvfs_json_key(j, "production");
      json_info(j, prod);
      sqlenvfs_json_key(j, "development");
      json_info(j, dev);
      sqlenvfs_json_end_object(j);
    }
    sqlenvfs_json_end_array(j);
    sqlenvfs_json_end_object(j);
    text = sqlenvfs_json_finish(j);
    fputs(text, stdout);
  } else if (infos->len == 0) {
    printf("no databases in %s (create one with `sqlenvfs init`)\n", sqlenvfs_root_dir(root));
  } else {
    for (guint i = 0; i < infos->len; i++) {
      const SqlenvfsDbInfo *info = infos->pdata[i];
      if (i % 2 == 0)
        printf("%s%s\n", i ? "\n" : "", info->db);
      print_text(info);
    }
  }
  fflush(stdout);
  for (guint i = 0; i < infos->len; i++) {
    const SqlenvfsDbInfo *info = infos->pdata[i];
    if (info->error) {
      fprintf(stderr, "sqlenvfs info: %s\n", info->error);
      status = CLI_FAILED;
    }
  }
  return status;
}
