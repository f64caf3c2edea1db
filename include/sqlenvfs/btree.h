/*
 * btree.h — reading SQLite b-tree pages by hand: the page header, its cells,
 * the varints and records inside them. Used to find which rows the pages
 * changed between two states hold (diff.h) without reading whole tables.
 *
 * Layout (SQLite's file format, "B-tree Pages"): a page starts with its
 * header at offset 0 (offset 100 on page 1, after the database header):
 *
 *   0   1  type: 0x02 index interior, 0x05 table interior,
 *              0x0a index leaf, 0x0d table leaf
 *   1   2  first freeblock       3  2  number of cells
 *   5   2  start of cell content 7  1  fragmented free bytes
 *   8   4  right-most child (interior pages only)
 *
 * then the cell pointer array: 2-byte offsets (from the start of the page)
 * of each cell, in key order. Cells:
 *
 *   table leaf      varint payload-size, varint rowid, local payload,
 *                   [4-byte first overflow page]
 *   table interior  4-byte left child, varint rowid (a key, no payload)
 *   index leaf      varint payload-size, local payload, [overflow page]
 *   index interior  4-byte left child, varint payload-size, local payload,
 *                   [overflow page]
 *
 * The local part of a payload of P bytes on a page of usable size U:
 * X = U-35 (table leaf) or ((U-12)*64/255)-23 (index pages); if P <= X all
 * of it; else M = ((U-12)*32/255)-23, K = M+((P-M) % (U-4)), K if K <= X
 * else M. An overflow page holds a 4-byte next page number (0: last) and
 * U-4 bytes of payload.
 *
 * Invariants of the parser:
 *   (1) Nothing is read outside the page buffer given: every offset and
 *       length from the page is checked first; a page that breaks the
 *       format is an INTEGRITY error naming the page, never a guess.
 *   (2) Child and overflow page numbers returned are >= 1; the caller
 *       checks them against the database size.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>

#include "sqlenvfs/util.h"

G_BEGIN_DECLS

typedef enum {
  SQLENVFS_BTREE_INDEX_INTERIOR = 0x02,
  SQLENVFS_BTREE_TABLE_INTERIOR = 0x05,
  SQLENVFS_BTREE_INDEX_LEAF = 0x0a,
  SQLENVFS_BTREE_TABLE_LEAF = 0x0d,
} SqlenvfsBtreePageType;

typedef struct {
  const guint8 *data;     /* the whole page (not owned)                  */
  guint32 page_size;      /* bytes in data                               */
  guint32 usable;         /* usable size (page size minus reserved bytes) */
  guint32 pgno;           /* for error messages                          */
  guint hdr;              /* offset of the header (100 on page 1)        */
  SqlenvfsBtreePageType type;
  guint n_cells;
  guint32 right_child;    /* interior pages; 0 on leaves                 */
} SqlenvfsBtreePage;

typedef struct {
  guint32 child;          /* interior pages: the left child              */
  gint64 rowid;           /* table pages: the key                        */
  guint64 payload_size;   /* table leaf, index pages                     */
  const guint8 *local;    /* the local part of the payload (in the page) */
  guint32 n_local;
  guint32 overflow;       /* first overflow page, 0 when none            */
} SqlenvfsBtreeCell;

/* Decode the varint at @p (at most @avail bytes there). Returns its length
 * (1..9) and *out, or 0 when it runs past @avail. */
guint sqlenvfs_btree_varint(const guint8 *p, gsize avail, guint64 *out);

/* Parse the header of page @pgno (@data, @page_size bytes, @usable of them
 * usable). FALSE and INTEGRITY naming the page when it is not a b-tree page
 * or its header or cell pointer array do not fit. */
gboolean sqlenvfs_btree_page_parse(const guint8 *data, guint32 page_size, guint32 usable,
                                   guint32 pgno, SqlenvfsBtreePage *out, GError **error);

/* Cell @i (< n_cells) of @page. FALSE and INTEGRITY naming the page and the
 * cell when it does not fit in the page. */
gboolean sqlenvfs_btree_cell(const SqlenvfsBtreePage *page, guint i, SqlenvfsBtreeCell *out,
                             GError **error);

/* The local payload size for a payload of @payload_size bytes on a page of
 * @type and usable size @usable. */
guint32 sqlenvfs_btree_local_size(SqlenvfsBtreePageType type, guint32 usable,
                                  guint64 payload_size);

/* Bind the first @n_fields fields of the record @rec (@len bytes: a whole
 * payload, overflow included) to parameters @first.. of @st, its text
 * taken as UTF-8. FALSE and INTEGRITY naming @what when the record is
 * malformed or has fewer fields. */
gboolean sqlenvfs_btree_record_bind(const guint8 *rec, gsize len, guint n_fields,
                                    sqlite3_stmt *st, int first, const char *what,
                                    GError **error);

/* The same, the text of the record in encoding @enc (SQLITE_UTF8,
 * SQLITE_UTF16LE or SQLITE_UTF16BE: the database's, its header says
 * which). */
gboolean sqlenvfs_btree_record_bind_enc(const guint8 *rec, gsize len, guint n_fields, int enc,
                                        sqlite3_stmt *st, int first, const char *what,
                                        GError **error);

G_END_DECLS
