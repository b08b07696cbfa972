#include "io/recipe.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DEPTH 32               /* deeper nesting is no recipe */
#define MAX_RECIPE_BYTES (1 << 20) /* likewise */
#define MAX_KEYS 256               /* per mapping; a recipe has a few dozen */

/* ---- memory: every allocation of a parse in one list ---------------------------- */

typedef union PoolItem {
    union PoolItem *next;
    max_align_t align;
} PoolItem;

static void *pool_alloc(void **pool, size_t size) {
    PoolItem *item = calloc(1, sizeof(PoolItem) + size);
    if (!item) return NULL;
    item->next = *pool;
    *pool = item;
    return item + 1;
}

static char *pool_strndup(void **pool, const char *s, size_t len) {
    char *p = pool_alloc(pool, len + 1);
    if (p) memcpy(p, s, len);
    return p;
}

static void pool_free(void **pool) {
    for (PoolItem *item = *pool, *next; item; item = next) {
        next = item->next;
        free(item);
    }
    *pool = NULL;
}

/* ---- the document as a tree with marks ------------------------------------------ */

typedef enum { NODE_SCALAR, NODE_SEQUENCE, NODE_MAPPING } NodeKind;

typedef struct Node {
    NodeKind kind;
    RecipeMark at;
    char *text;                /* scalars */
    size_t len;
    int plain;                 /* unquoted scalar (may be a number, a bool, null) */
    struct Node *first, *last; /* children; a mapping's are key, value, key, value, ... */
    struct Node *next;
    int count;
} Node;

typedef struct {
    Recipe *r;
    void *nodes; /* the tree, freed after the parse */
    yaml_parser_t parser;
    const char *text;
    size_t len;
    char *err;
    size_t n;
} Parse;

static RecipeMark mark_of(yaml_mark_t m) { return (RecipeMark){(int)m.line + 1, (int)m.column + 1}; }

static void vformat_error(const Recipe *r, RecipeMark at, char *err, size_t n, const char *fmt,
                          va_list ap) {
    int len = snprintf(err, n, "%s:%d:%d: ", r->file ? r->file : "recipe", at.line, at.column);
    if (len >= 0 && (size_t)len < n) vsnprintf(err + len, n - len, fmt, ap);
}

void recipe_error(const Recipe *r, RecipeMark at, char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat_error(r, at, err, n, fmt, ap);
    va_end(ap);
}

static int fail(Parse *p, RecipeMark at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Parse *p, RecipeMark at, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat_error(p->r, at, p->err, p->n, fmt, ap);
    va_end(ap);
    return -1;
}

static int out_of_memory(Parse *p) { return fail(p, (RecipeMark){0, 0}, "out of memory"); }

/* Line and column of a byte offset (reader errors come with an offset only). */
static RecipeMark mark_at_offset(const Parse *p, size_t offset) {
    RecipeMark m = {1, 1};
    for (size_t i = 0; i < offset && i < p->len; i++) {
        if (p->text[i] == '\n') m.line++, m.column = 1;
        else m.column++;
    }
    return m;
}

static int syntax_error(Parse *p) {
    const yaml_parser_t *y = &p->parser;
    if (y->error == YAML_MEMORY_ERROR) return out_of_memory(p);
    RecipeMark at = y->error == YAML_READER_ERROR ? mark_at_offset(p, y->problem_offset)
                                                  : mark_of(y->problem_mark);
    const char *problem = y->problem ? y->problem : "malformed YAML";
    if (y->error != YAML_READER_ERROR && y->problem_mark.index < p->len &&
        p->text[y->problem_mark.index] == '\t')
        return fail(p, at, "YAML syntax error: a tab; YAML indents with spaces only");
    if (y->context && y->error != YAML_READER_ERROR)
        return fail(p, at, "YAML syntax error: %s (%s at line %d, column %d)", problem, y->context,
                    (int)y->context_mark.line + 1, (int)y->context_mark.column + 1);
    return fail(p, at, "YAML syntax error: %s", problem);
}

static int next_event(Parse *p, yaml_event_t *ev) {
    return yaml_parser_parse(&p->parser, ev) ? 0 : syntax_error(p);
}

static const char *event_tag(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_SCALAR_EVENT: return (const char *)ev->data.scalar.tag;
    case YAML_SEQUENCE_START_EVENT: return (const char *)ev->data.sequence_start.tag;
    case YAML_MAPPING_START_EVENT: return (const char *)ev->data.mapping_start.tag;
    default: return NULL;
    }
}

static int is_null(const Node *v) {
    if (v->kind != NODE_SCALAR || !v->plain) return 0;
    return v->len == 0 || !strcmp(v->text, "~") || !strcmp(v->text, "null") ||
           !strcmp(v->text, "Null") || !strcmp(v->text, "NULL");
}

/* Builds the node that starts with *ev (consumed) and its children. */
static Node *read_node(Parse *p, yaml_event_t *ev, int depth) {
    RecipeMark at = mark_of(ev->start_mark);
    yaml_event_type_t type = ev->type;
    Node *node = NULL;
    if (type == YAML_ALIAS_EVENT) {
        fail(p, at, "YAML aliases (*name) are not supported in recipes; write the value out");
    } else if (event_tag(ev)) {
        fail(p, at, "YAML tags (!name) are not supported in recipes; quote the value instead");
    } else if (depth > MAX_DEPTH) {
        fail(p, at, "nested more than %d levels deep", MAX_DEPTH);
    } else if (!(node = pool_alloc(&p->nodes, sizeof *node))) {
        out_of_memory(p);
    } else {
        node->at = at;
        if (type == YAML_SCALAR_EVENT) {
            node->kind = NODE_SCALAR;
            node->len = ev->data.scalar.length;
            node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            node->text = pool_strndup(&p->nodes, (const char *)ev->data.scalar.value, node->len);
            if (!node->text) node = NULL, out_of_memory(p);
        } else {
            node->kind = type == YAML_SEQUENCE_START_EVENT ? NODE_SEQUENCE : NODE_MAPPING;
        }
    }
    yaml_event_delete(ev);
    if (!node || node->kind == NODE_SCALAR) return node;
    yaml_event_type_t end = node->kind == NODE_SEQUENCE ? YAML_SEQUENCE_END_EVENT
                                                        : YAML_MAPPING_END_EVENT;
    for (;;) {
        yaml_event_t child;
        if (next_event(p, &child)) return NULL;
        if (child.type == end) {
            yaml_event_delete(&child);
            return node;
        }
        Node *kid = read_node(p, &child, depth + 1);
        if (!kid) return NULL;
        if (node->kind == NODE_MAPPING && node->count % 2 == 0) {
            if (node->count >= 2 * MAX_KEYS)
                return fail(p, kid->at, "more than %d keys in one mapping", MAX_KEYS), NULL;
            if (kid->kind != NODE_SCALAR || is_null(kid))
                return fail(p, kid->at, "keys must be plain names"), NULL;
            for (const Node *k = node->first; k; k = k->next->next)
                if (!strcmp(k->text, kid->text))
                    return fail(p, kid->at, "duplicate key '%s' (first at line %d, column %d)",
                                kid->text, k->at.line, k->at.column),
                           NULL;
        }
        if (node->last) node->last->next = kid;
        else node->first = kid;
        node->last = kid;
        node->count++;
    }
}

/* The whole stream: exactly one document. */
static Node *read_document(Parse *p) {
    yaml_event_t ev;
    if (next_event(p, &ev)) return NULL; /* stream start */
    yaml_event_delete(&ev);
    if (next_event(p, &ev)) return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        fail(p, (RecipeMark){1, 1}, "the recipe is empty: give a train, colorize or eval job");
        return NULL;
    }
    yaml_event_delete(&ev); /* document start */
    if (next_event(p, &ev)) return NULL;
    Node *root = read_node(p, &ev, 0);
    if (!root) return NULL;
    if (next_event(p, &ev)) return NULL; /* document end */
    yaml_event_delete(&ev);
    if (next_event(p, &ev)) return NULL;
    int more = ev.type != YAML_STREAM_END_EVENT;
    RecipeMark at = mark_of(ev.start_mark);
    yaml_event_delete(&ev);
    if (more) return fail(p, at, "a recipe is one YAML document; remove the second one"), NULL;
    return root;
}

/* ---- typed values ------------------------------------------------------------------ */

static const char *shown(const Node *v, char *buf, size_t n) {
    if (v->kind == NODE_SEQUENCE) return "a list";
    if (v->kind == NODE_MAPPING) return "a mapping";
    if (is_null(v)) return "no value";
    if (!v->plain) return "a quoted string";
    snprintf(buf, n, "'%.40s%s'", v->text, v->len > 40 ? "..." : "");
    return buf;
}

static int wrong_type(Parse *p, const Node *v, const char *key, const char *expected) {
    char buf[64];
    if (is_null(v))
        return fail(p, v->at, "%s: no value; give %s (or remove the key to use the default)", key,
                    expected);
    return fail(p, v->at, "%s: expected %s, got %s", key, expected, shown(v, buf, sizeof buf));
}

static int get_string(Parse *p, const Node *v, const char *key, char **out) {
    if (v->kind != NODE_SCALAR || is_null(v)) return wrong_type(p, v, key, "a string");
    if (strlen(v->text) != v->len) return fail(p, v->at, "%s: contains a NUL character", key);
    if (v->len == 0) return fail(p, v->at, "%s: is empty", key);
    if (!(*out = pool_strndup(&p->r->pool, v->text, v->len))) return out_of_memory(p);
    return 0;
}

static int parse_long(const Node *v, long *out) {
    if (v->kind != NODE_SCALAR || !v->plain || v->len == 0) return -1;
    char *end;
    errno = 0;
    long x = strtol(v->text, &end, 10);
    if (*end || errno || !strchr("+-0123456789", v->text[0])) return -1;
    *out = x;
    return 0;
}

static int parse_double(const Node *v, double *out) {
    if (v->kind != NODE_SCALAR || !v->plain || v->len == 0) return -1;
    char *end;
    double x = strtod(v->text, &end);
    /* decimal numbers only: no inf, nan or hexadecimal */
    if (*end || !isfinite(x) || strpbrk(v->text, "xXnN")) return -1;
    *out = x;
    return 0;
}

static int get_long(Parse *p, const Node *v, const char *key, long lo, long hi, long *out) {
    if (parse_long(v, out)) return wrong_type(p, v, key, "an integer");
    if (*out < lo || *out > hi) {
        if (hi == LONG_MAX) return fail(p, v->at, "%s: %ld is less than %ld", key, *out, lo);
        return fail(p, v->at, "%s: %ld is out of range (%ld to %ld)", key, *out, lo, hi);
    }
    return 0;
}

static int get_int(Parse *p, const Node *v, const char *key, long lo, long hi, int *out) {
    long x;
    if (get_long(p, v, key, lo, hi > INT_MAX ? INT_MAX : hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

static int get_double(Parse *p, const Node *v, const char *key, double lo, double hi, double *out) {
    if (parse_double(v, out)) return wrong_type(p, v, key, "a number");
    if (!(*out >= lo && *out <= hi))
        return fail(p, v->at, "%s: %g is out of range (%g to %g)", key, *out, lo, hi);
    return 0;
}

static int parse_bool(const Node *v, int *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (v->kind != NODE_SCALAR || !v->plain) return -1;
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(v->text, yes[i])) return *out = 1, 0;
        if (!strcasecmp(v->text, no[i])) return *out = 0, 0;
    }
    return -1;
}

static int get_bool(Parse *p, const Node *v, const char *key, int *out) {
    return parse_bool(v, out) ? wrong_type(p, v, key, "true or false") : 0;
}

/* Exactly count numbers in a list. */
static int get_numbers(Parse *p, const Node *v, const char *key, int count, double *out) {
    char expected[64];
    snprintf(expected, sizeof expected, "a list of %d numbers", count);
    if (v->kind != NODE_SEQUENCE || v->count != count) return wrong_type(p, v, key, expected);
    int i = 0;
    for (const Node *x = v->first; x; x = x->next, i++)
        if (parse_double(x, &out[i])) return wrong_type(p, x, key, expected);
    return 0;
}

static int is_vsi_archive_prefix(const char *path, size_t *len) {
    static const char *const prefixes[] = {"/vsizip/", "/vsitar/", "/vsigzip/"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(path, prefixes[i], strlen(prefixes[i]))) return *len = strlen(prefixes[i]), 1;
    return 0;
}

/* A path of the recipe, relative to its folder unless absolute; inside
 * /vsizip/, /vsitar/ and /vsigzip/ the archive's path likewise. */
static char *resolve(Parse *p, const char *path) {
    size_t pre = 0;
    is_vsi_archive_prefix(path, &pre);
    const char *rest = path + pre;
    if (rest[0] == '/') return pool_strndup(&p->r->pool, path, strlen(path));
    while (rest[0] == '.' && rest[1] == '/') rest += 2;
    const char *dir = p->r->dir;
    size_t len = pre + strlen(dir) + 1 + strlen(rest) + 1;
    char *out = pool_alloc(&p->r->pool, len);
    if (out) snprintf(out, len, "%.*s%s/%s", (int)pre, path, dir, rest);
    return out;
}

static int get_path(Parse *p, const Node *v, const char *key, RecipePath *out) {
    char *text;
    if (get_string(p, v, key, &text)) return -1;
    if (!(out->path = resolve(p, text))) return out_of_memory(p);
    out->at = v->at;
    return 0;
}

/* One path or a non-empty list of them. */
static int get_paths(Parse *p, const Node *v, const char *key, RecipePaths *out) {
    if (v->kind == NODE_MAPPING) return wrong_type(p, v, key, "a path or a list of paths");
    int count = v->kind == NODE_SEQUENCE ? v->count : 1;
    if (count == 0) return fail(p, v->at, "%s: the list is empty", key);
    if (!(out->items = pool_alloc(&p->r->pool, count * sizeof *out->items))) return out_of_memory(p);
    out->count = count;
    const Node *x = v->kind == NODE_SEQUENCE ? v->first : v;
    for (int i = 0; i < count; i++, x = x->next) {
        char item[96];
        snprintf(item, sizeof item, "%s[%d]", key, i);
        if (x->kind != NODE_SCALAR) return wrong_type(p, x, item, "a path");
        if (get_path(p, x, item, &out->items[i])) return -1;
    }
    return 0;
}

/* NAME=VALUE items, from a list of "NAME=VALUE" or a mapping NAME: VALUE. */
static int get_options(Parse *p, const Node *v, const char *key, char ***out) {
    if (v->kind == NODE_SCALAR) return wrong_type(p, v, key, "a list of NAME=VALUE or a mapping");
    int count = v->kind == NODE_MAPPING ? v->count / 2 : v->count;
    char **list = pool_alloc(&p->r->pool, (count + 1) * sizeof *list);
    if (!list) return out_of_memory(p);
    int i = 0;
    for (const Node *x = v->first; x; x = x->next, i++) {
        char *name = NULL, *value = NULL;
        if (v->kind == NODE_MAPPING) {
            name = x->text;
            x = x->next;
            if (get_string(p, x, key, &value)) return -1;
        } else {
            if (get_string(p, x, key, &value)) return -1;
            char *eq = strchr(value, '=');
            if (!eq || eq == value)
                return fail(p, x->at, "%s: expected NAME=VALUE, got '%.60s'", key, value);
        }
        size_t len = (name ? strlen(name) + 1 : 0) + strlen(value) + 1;
        if (!(list[i] = pool_alloc(&p->r->pool, len))) return out_of_memory(p);
        snprintf(list[i], len, "%s%s%s", name ? name : "", name ? "=" : "", value);
    }
    *out = list;
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

static int unknown_key(Parse *p, const Node *k, const char *section, const char *const *known) {
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close names */
    char list[512] = "";
    size_t used = 0;
    for (int i = 0; known[i]; i++) {
        size_t d = edit_distance(k->text, known[i]);
        if (d < best_d) best = known[i], best_d = d;
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", known[i]);
        if (w > 0 && used + w < sizeof list) used += w;
    }
    char name[48];
    snprintf(name, sizeof name, "%.40s%s", k->text, k->len > 40 ? "..." : "");
    if (best)
        return fail(p, k->at, "%s: unknown key '%s' (did you mean '%s'?)", section, name, best);
    return fail(p, k->at, "%s: unknown key '%s' (known keys: %s)", section, name, list);
}

static int missing_key(Parse *p, RecipeMark at, const char *section, const char *key) {
    return fail(p, at, "%s: the required key '%s' is missing", section, key);
}

static int want_mapping(Parse *p, const Node *v, const char *section) {
    if (v->kind == NODE_MAPPING) return 0;
    return wrong_type(p, v, section, "a mapping of settings (key: value lines, indented)");
}

/* ---- output name patterns ---------------------------------------------------------------- */

static const char *const PLACEHOLDERS[] = {"stem", "name", "parent", "index"};

static int check_file_name(Parse *p, const Node *v, const char *key, const char *s) {
    if (strchr(s, '/')) return fail(p, v->at, "%s: '%s' must be a file name, not a path", key, s);
    if (s[0] == '.')
        return fail(p, v->at, "%s: '%s' must not start with '.' (hidden names are the run's own)",
                    key, s);
    if (strlen(s) > 200) return fail(p, v->at, "%s: longer than 200 characters", key);
    return 0;
}

static int check_pattern(Parse *p, const Node *v, const char *key, const char *s) {
    if (check_file_name(p, v, key, s)) return -1;
    for (const char *c = s; *c; c++) {
        if (*c == '}') return fail(p, v->at, "%s: '}' without '{' in '%s'", key, s);
        if (*c != '{') continue;
        const char *close = strchr(c, '}');
        if (!close) return fail(p, v->at, "%s: '{' without '}' in '%s'", key, s);
        int known = 0;
        for (int i = 0; i < 4; i++)
            known |= (size_t)(close - c - 1) == strlen(PLACEHOLDERS[i]) &&
                     !strncmp(c + 1, PLACEHOLDERS[i], close - c - 1);
        if (!known)
            return fail(p, v->at, "%s: unknown placeholder '%.*s' (use {stem}, {name}, {parent} "
                                  "or {index})",
                        key, (int)(close - c + 1), c);
        c = close;
    }
    return 0;
}

static const char *last_part(const char *path, size_t *len) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    *len = end - start;
    return path + start;
}

static size_t archive_ext_len(const char *name, size_t len) {
    static const char *const ext[] = {".tar.gz", ".tgz", ".zip", ".tar", ".gz"};
    for (int i = 0; i < 5; i++) {
        size_t e = strlen(ext[i]);
        if (len > e && !strncasecmp(name + len - e, ext[i], e)) return e;
    }
    return 0;
}

int recipe_output_name(char *out, size_t n, const char *pattern, const char *input, int index,
                       int count) {
    size_t name_len, parent_len = 0;
    const char *name = last_part(input, &name_len);
    const char *parent = "";
    if (name > input + 1) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(name - input - 1), input);
        const char *p = last_part(dir, &parent_len);
        parent = input + (p - dir);
        parent_len -= archive_ext_len(parent, parent_len);
    }
    size_t stem_len = name_len;
    for (size_t i = name_len; i > 0; i--)
        if (name[i - 1] == '.') {
            stem_len = i - 1 ? i - 1 : name_len; /* ".hidden" keeps its name */
            break;
        }
    int digits = 1;
    for (int c = count; c >= 10; c /= 10) digits++;
    size_t used = 0;
    for (const char *c = pattern; *c; c++) {
        char buf[32];
        const char *piece = c;
        size_t len = 1;
        if (*c == '{') {
            const char *close = strchr(c, '}');
            if (!close) return -1;
            size_t key = close - c - 1;
            if (key == 4 && !strncmp(c + 1, "stem", 4)) piece = name, len = stem_len;
            else if (key == 4 && !strncmp(c + 1, "name", 4)) piece = name, len = name_len;
            else if (key == 6 && !strncmp(c + 1, "parent", 6)) piece = parent, len = parent_len;
            else if (key == 5 && !strncmp(c + 1, "index", 5))
                len = snprintf(buf, sizeof buf, "%0*d", digits, index), piece = buf;
            else return -1;
            c = close;
        }
        if (used + len + 1 > n) return -1;
        memcpy(out + used, piece, len);
        used += len;
    }
    out[used] = 0;
    return used ? 0 : -1;
}

/* ---- sections ------------------------------------------------------------------------------- */

static const char *const COLORIZE_KEYS[] = {
    "model", "inputs", "output", "name", "format", "creation_options", "tile", "threads", "band",
    "scale", "overviews", "t_srs", "resampling", "aoi", "mosaic", NULL};
static const char *const RESAMPLING[] = {"near", "bilinear", "cubic", "cubicspline", "lanczos",
                                         "average", "mode", NULL};

static int parse_colorize(Parse *p, const Node *map, RecipeMark at) {
    RecipeColorize *c = &p->r->colorize;
    c->present = 1, c->at = at;
    if (want_mapping(p, map, "colorize")) return -1;
    for (const Node *k = map->first; k; k = k->next->next) {
        const Node *v = k->next;
        const char *name = k->text;
        char key[96];
        snprintf(key, sizeof key, "colorize.%s", name);
        int rc = 0;
        if (!strcmp(name, "model")) {
            rc = get_path(p, v, key, &c->model);
        } else if (!strcmp(name, "inputs")) {
            rc = get_paths(p, v, key, &c->inputs);
        } else if (!strcmp(name, "output")) {
            rc = get_path(p, v, key, &c->output);
        } else if (!strcmp(name, "name")) {
            rc = get_string(p, v, key, &c->name) || check_pattern(p, v, key, c->name);
            c->name_at = v->at;
        } else if (!strcmp(name, "format")) {
            rc = get_string(p, v, key, &c->format);
            c->format_at = v->at;
        } else if (!strcmp(name, "creation_options")) {
            rc = get_options(p, v, key, &c->creation_options);
        } else if (!strcmp(name, "tile")) {
            rc = get_int(p, v, key, 4, 16384, &c->tile);
            if (!rc && c->tile % 4) rc = fail(p, v->at, "%s: %d is not a multiple of 4", key, c->tile);
        } else if (!strcmp(name, "threads")) {
            rc = get_int(p, v, key, 1, 4096, &c->threads);
        } else if (!strcmp(name, "band")) {
            rc = get_int(p, v, key, 1, 65535, &c->band);
        } else if (!strcmp(name, "scale")) {
            rc = get_numbers(p, v, key, 2, c->scale);
            if (!rc && !(c->scale[1] > c->scale[0]))
                rc = fail(p, v->at, "%s: needs MIN < MAX, got [%g, %g]", key, c->scale[0], c->scale[1]);
            c->has_scale = 1;
        } else if (!strcmp(name, "overviews")) {
            rc = get_bool(p, v, key, &c->overviews);
        } else if (!strcmp(name, "t_srs")) {
            rc = get_string(p, v, key, &c->t_srs);
            c->t_srs_at = v->at;
        } else if (!strcmp(name, "resampling")) {
            rc = get_string(p, v, key, &c->resampling);
            int known = 0;
            for (int i = 0; !rc && RESAMPLING[i]; i++) known |= !strcmp(c->resampling, RESAMPLING[i]);
            if (!rc && !known)
                rc = fail(p, v->at, "%s: '%s' is not one of near, bilinear, cubic, cubicspline, "
                                    "lanczos, average, mode", key, c->resampling);
        } else if (!strcmp(name, "aoi")) {
            double *a = c->aoi;
            rc = get_numbers(p, v, key, 4, a);
            if (!rc && !(a[0] >= -180 && a[2] <= 180 && a[1] >= -90 && a[3] <= 90))
                rc = fail(p, v->at, "%s: [west, south, east, north] in degrees: longitudes within "
                                    "-180..180, latitudes within -90..90", key);
            else if (!rc && !(a[0] < a[2] && a[1] < a[3]))
                rc = fail(p, v->at, "%s: [west, south, east, north] needs west < east and south < "
                                    "north (boxes across the antimeridian are not supported)", key);
            c->has_aoi = 1, c->aoi_at = v->at;
        } else if (!strcmp(name, "mosaic")) {
            int on;
            c->mosaic_at = v->at;
            if (parse_bool(v, &on) == 0) {
                if (on && !(c->mosaic = pool_strndup(&p->r->pool, "mosaic.vrt", 10)))
                    rc = out_of_memory(p);
            } else if (v->kind != NODE_SCALAR || !v->len) {
                rc = wrong_type(p, v, key, "true, false or a file name ending in .vrt");
            } else {
                rc = get_string(p, v, key, &c->mosaic) || check_file_name(p, v, key, c->mosaic);
                if (!rc && (strlen(c->mosaic) < 5 ||
                            strcasecmp(c->mosaic + strlen(c->mosaic) - 4, ".vrt")))
                    rc = fail(p, v->at, "%s: '%s' must end in .vrt", key, c->mosaic);
            }
        } else {
            rc = unknown_key(p, k, "colorize", COLORIZE_KEYS);
        }
        if (rc) return -1;
    }
    if (!c->inputs.count) return missing_key(p, at, "colorize", "inputs");
    if (!c->output.path) return missing_key(p, at, "colorize", "output");
    if (!c->resampling && !(c->resampling = pool_strndup(&p->r->pool, "bilinear", 8)))
        return out_of_memory(p);
    return 0;
}

typedef struct {
    const char *name;
    size_t offset; /* of a long in RecipeTrain */
    long lo, hi;
} TrainInteger;

static const TrainInteger TRAIN_INTEGERS[] = {
    {"crop", offsetof(RecipeTrain, crop), 96, 8192},
    {"batch", offsetof(RecipeTrain, batch), 1, 4096},
    {"steps", offsetof(RecipeTrain, steps), 1, INT_MAX},
    {"epochs", offsetof(RecipeTrain, epochs), 1, INT_MAX},
    {"stop_after", offsetof(RecipeTrain, stop_after), 1, INT_MAX},
    {"checkpoint_every", offsetof(RecipeTrain, checkpoint_every), 1, INT_MAX},
    {"threads", offsetof(RecipeTrain, threads), 1, 4096},
    {"F", offsetof(RecipeTrain, F), 1, 1024},
    {"K", offsetof(RecipeTrain, K), 1, 1024},
    {"R", offsetof(RecipeTrain, R), 0, 64},
    {"nd", offsetof(RecipeTrain, nd), 1, 1024},
    {NULL, 0, 0, 0}};

static const char *const TRAIN_KEYS[] = {
    "gray", "color", "gray_from_color", "color_bands", "crop", "batch", "steps", "epochs",
    "stop_after", "scales", "lambda_a", "lambda_b", "contours", "ht", "lr", "F", "K", "R", "nd",
    "name", "out", "seed", "threads", "checkpoint_every", "keep_epochs", "export", "init",
    "keep_luminance", NULL};

static int parse_train(Parse *p, const Node *map, RecipeMark at) {
    RecipeTrain *t = &p->r->train;
    t->present = 1, t->at = at;
    if (want_mapping(p, map, "train")) return -1;
    const Node *length_key = NULL; /* steps or epochs, not both */
    for (const Node *k = map->first; k; k = k->next->next) {
        const Node *v = k->next;
        const char *name = k->text;
        char key[96];
        snprintf(key, sizeof key, "train.%s", name);
        const TrainInteger *integer = NULL;
        for (int i = 0; TRAIN_INTEGERS[i].name && !integer; i++)
            if (!strcmp(name, TRAIN_INTEGERS[i].name)) integer = &TRAIN_INTEGERS[i];
        int rc = 0;
        if (!strcmp(name, "gray")) {
            rc = get_paths(p, v, key, &t->gray);
        } else if (!strcmp(name, "color")) {
            rc = get_paths(p, v, key, &t->color);
        } else if (!strcmp(name, "out")) {
            rc = get_path(p, v, key, &t->out);
        } else if (!strcmp(name, "export")) {
            rc = get_path(p, v, key, &t->export_model);
        } else if (!strcmp(name, "init")) {
            rc = get_path(p, v, key, &t->init);
        } else if (!strcmp(name, "keep_luminance")) {
            rc = get_bool(p, v, key, &t->keep_luminance);
        } else if (!strcmp(name, "gray_from_color")) {
            rc = get_bool(p, v, key, &t->gray_from_color);
        } else if (!strcmp(name, "keep_epochs")) {
            rc = get_bool(p, v, key, &t->keep_epochs);
        } else if (!strcmp(name, "color_bands")) {
            double b[3];
            rc = get_numbers(p, v, key, 3, b);
            for (int i = 0; !rc && i < 3; i++) {
                if (b[i] != floor(b[i]) || b[i] < 1 || b[i] > 65535)
                    rc = fail(p, v->at, "%s: band numbers are 1, 2, ... (got %g)", key, b[i]);
                else
                    t->color_bands[i] = (int)b[i];
            }
        } else if (integer) {
            int is_length = !strcmp(name, "steps") || !strcmp(name, "epochs");
            if (is_length && length_key)
                return fail(p, k->at, "train: give steps or epochs, not both ('%s' at line %d)",
                            length_key->text, length_key->at.line);
            if (is_length) length_key = k;
            long *dst = (long *)((char *)t + integer->offset);
            rc = get_long(p, v, key, integer->lo, integer->hi, dst);
            if (!rc && !strcmp(name, "crop") && *dst % 4)
                rc = fail(p, v->at, "%s: %ld is not a multiple of 4", key, *dst);
        } else if (!strcmp(name, "seed")) {
            long s;
            rc = get_long(p, v, key, 0, LONG_MAX, &s);
            t->seed = s;
        } else if (!strcmp(name, "scales")) {
            if (v->kind != NODE_SEQUENCE || v->count < 1 || v->count > 3)
                rc = wrong_type(p, v, key, "a list of 1 to 3 scales, e.g. [1, 2, 3]");
            int i = 0;
            for (const Node *x = rc ? NULL : v->first; x && !rc; x = x->next)
                rc = get_int(p, x, key, 1, 3, &t->scales[i++]);
            t->num_scales = i;
        } else if (!strcmp(name, "lambda_a") || !strcmp(name, "lambda_b")) {
            rc = get_double(p, v, key, 0, 1e6, name[7] == 'a' ? &t->lambda_a : &t->lambda_b);
        } else if (!strcmp(name, "contours")) {
            int on;
            if (parse_bool(v, &on) == 0) t->contours = on ? -1.0 : 0.0; /* -1: the default weight */
            else rc = get_double(p, v, key, 0, 1e6, &t->contours);
        } else if (!strcmp(name, "ht")) {
            rc = get_numbers(p, v, key, 3, t->ht);
            t->has_ht = 1;
        } else if (!strcmp(name, "lr")) {
            rc = get_double(p, v, key, 1e-12, 1, &t->lr);
        } else if (!strcmp(name, "name")) {
            rc = get_string(p, v, key, &t->name);
            if (!rc && strlen(t->name) > 63) rc = fail(p, v->at, "%s: longer than 63 characters", key);
        } else {
            rc = unknown_key(p, k, "train", TRAIN_KEYS);
        }
        if (rc) return -1;
    }
    if (!t->gray.count) return missing_key(p, at, "train", "gray");
    if (!t->color.count) return missing_key(p, at, "train", "color");
    if (!t->out.path) return missing_key(p, at, "train", "out");
    return 0;
}

static const char *const EVAL_KEYS[] = {"model", "inputs", "json", "csv", "samples",
                                        "keep_luminance", NULL};

static int parse_eval(Parse *p, const Node *map, RecipeMark at) {
    RecipeEval *e = &p->r->eval;
    e->present = 1, e->at = at;
    if (want_mapping(p, map, "eval")) return -1;
    for (const Node *k = map->first; k; k = k->next->next) {
        const Node *v = k->next;
        const char *name = k->text;
        char key[96];
        snprintf(key, sizeof key, "eval.%s", name);
        int rc;
        if (!strcmp(name, "model")) rc = get_path(p, v, key, &e->model);
        else if (!strcmp(name, "inputs")) rc = get_paths(p, v, key, &e->inputs);
        else if (!strcmp(name, "json")) rc = get_path(p, v, key, &e->json);
        else if (!strcmp(name, "csv")) rc = get_path(p, v, key, &e->csv);
        else if (!strcmp(name, "samples")) rc = get_path(p, v, key, &e->samples);
        else if (!strcmp(name, "keep_luminance")) rc = get_bool(p, v, key, &e->keep_luminance);
        else rc = unknown_key(p, k, "eval", EVAL_KEYS);
        if (rc) return -1;
    }
    if (!e->inputs.count) return missing_key(p, at, "eval", "inputs");
    return 0;
}

static const char *const TOP_KEYS[] = {"version", "train", "colorize", "eval", NULL};

static int parse_root(Parse *p, const Node *root) {
    if (root->kind != NODE_MAPPING)
        return fail(p, root->at, "a recipe is a mapping of jobs (train:, colorize:, eval:), not %s",
                    root->kind == NODE_SEQUENCE ? "a list" : "a single value");
    for (const Node *k = root->first; k; k = k->next->next) {
        const Node *v = k->next;
        int rc;
        if (!strcmp(k->text, "version")) {
            long version;
            rc = get_long(p, v, "version", 1, 1, &version);
        } else if (!strcmp(k->text, "train")) {
            rc = parse_train(p, v, k->at);
        } else if (!strcmp(k->text, "colorize")) {
            rc = parse_colorize(p, v, k->at);
        } else if (!strcmp(k->text, "eval")) {
            rc = parse_eval(p, v, k->at);
        } else {
            rc = unknown_key(p, k, "recipe", TOP_KEYS);
        }
        if (rc) return -1;
    }
    if (!p->r->train.present && !p->r->colorize.present && !p->r->eval.present)
        return fail(p, root->at, "no job: give train:, colorize: or eval:");
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------------ */

static void recipe_init(Recipe *r) {
    memset(r, 0, sizeof *r);
    RecipeTrain *t = &r->train;
    t->crop = t->batch = t->steps = t->epochs = t->stop_after = t->checkpoint_every = -1;
    t->threads = t->F = t->K = t->R = t->nd = -1;
    t->seed = -1;
    t->lambda_a = t->lambda_b = t->contours = t->lr = NAN;
    r->eval.keep_luminance = -1;
}

int recipe_parse(Recipe *r, const char *file, const char *dir, const char *text, size_t len,
                 char *err, size_t n) {
    recipe_init(r);
    Parse p = {.r = r, .text = text, .len = len, .err = err, .n = n};
    r->file = pool_strndup(&r->pool, file, strlen(file));
    r->dir = pool_strndup(&r->pool, dir, strlen(dir));
    if (!r->file || !r->dir) return out_of_memory(&p);
    if (len > MAX_RECIPE_BYTES) return fail(&p, (RecipeMark){1, 1}, "larger than 1 MiB: no recipe");
    if (!yaml_parser_initialize(&p.parser)) return out_of_memory(&p);
    yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
    Node *root = read_document(&p);
    int rc = root ? parse_root(&p, root) : -1;
    yaml_parser_delete(&p.parser);
    pool_free(&p.nodes);
    return rc;
}

int recipe_load(Recipe *r, const char *path, char *err, size_t n) {
    recipe_init(r);
    char real[PATH_MAX];
    FILE *f = realpath(path, real) ? fopen(real, "rb") : NULL;
    if (!f) {
        snprintf(err, n, "%s: cannot read the recipe: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(MAX_RECIPE_BYTES + 1);
    size_t len = text ? fread(text, 1, MAX_RECIPE_BYTES + 1, f) : 0;
    int read_error = ferror(f);
    fclose(f);
    if (!text || read_error) {
        free(text);
        snprintf(err, n, "%s: cannot read the recipe", path);
        return -1;
    }
    *strrchr(real, '/') = 0; /* realpath gives an absolute path: there is a '/' */
    int rc = recipe_parse(r, path, real[0] ? real : "/", text, len, err, n);
    free(text);
    return rc;
}

void recipe_free(Recipe *r) {
    pool_free(&r->pool);
    memset(r, 0, sizeof *r);
}
