/* Model configuration: defaults, validation and the JSON form stored in checkpoints. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/networks.h"

ModelConfig model_config_default(void) {
    ModelConfig c = {.name = "spynco-s", .F = 32, .K = 64, .R = 6, .nd = 32,
                     .ht = {0.299f, 0.587f, 0.114f}, .num_scales = 3, .scales = {1, 2, 3}};
    return c;
}

int model_config_check(const ModelConfig *c, char *err, size_t n) {
    if (c->F < 1 || c->F > 1024 || c->K < 1 || c->K > 1024 || c->nd < 1 || c->nd > 1024) {
        snprintf(err, n, "widths must be 1..1024 (F=%d K=%d nd=%d)", c->F, c->K, c->nd);
        return -1;
    }
    if (c->R < 0 || c->R > 64) {
        snprintf(err, n, "R (residual blocks) must be 0..64, not %d", c->R);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(c->ht[i]) || c->ht[i] < 0.0f) {
            snprintf(err, n, "ht_weights must be finite and non-negative");
            return -1;
        }
    if (fabsf(c->ht[0] + c->ht[1] + c->ht[2] - 1.0f) > 1e-3f) {
        snprintf(err, n, "ht_weights must sum to 1 (they sum to %g)",
                 (double)(c->ht[0] + c->ht[1] + c->ht[2]));
        return -1;
    }
    if (c->num_scales < 1 || c->num_scales > MODEL_MAX_SCALES) {
        snprintf(err, n, "scales must list 1 to %d pyramid outputs", MODEL_MAX_SCALES);
        return -1;
    }
    for (int i = 0; i < c->num_scales; i++) {
        if (c->scales[i] < 1 || c->scales[i] > 3 || (i > 0 && c->scales[i] <= c->scales[i - 1])) {
            snprintf(err, n, "scales must be increasing values from {1, 2, 3}");
            return -1;
        }
    }
    return 0;
}

char *model_config_to_json(const ModelConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "F", c->F);
    cJSON_AddNumberToObject(o, "K", c->K);
    cJSON_AddNumberToObject(o, "R", c->R);
    cJSON_AddNumberToObject(o, "nd", c->nd);
    /* The shortest decimal that reads back as the same float ("0.299"). */
    cJSON *ht = cJSON_AddArrayToObject(o, "ht_weights");
    for (int i = 0; i < 3; i++) {
        char buf[32];
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, (double)c->ht[i]);
            if (strtof(buf, NULL) == c->ht[i]) break;
        }
        cJSON_AddItemToArray(ht, cJSON_CreateRaw(buf));
    }
    cJSON *sc = cJSON_AddArrayToObject(o, "scales");
    for (int i = 0; i < c->num_scales; i++) cJSON_AddItemToArray(sc, cJSON_CreateNumber(c->scales[i]));
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int get_int(const cJSON *o, const char *key, int *out, char *err, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble) {
        snprintf(err, n, "config: '%s' must be an integer", key);
        return -1;
    }
    *out = v->valueint;
    return 0;
}

int model_config_from_json(ModelConfig *c, const char *json, char *err, size_t n) {
    cJSON *o = cJSON_Parse(json);
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(o)) {
        snprintf(err, n, "config is not a JSON object");
        goto done;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (cJSON_IsString(name)) snprintf(c->name, sizeof c->name, "%s", name->valuestring);
    if (get_int(o, "F", &c->F, err, n) || get_int(o, "K", &c->K, err, n) ||
        get_int(o, "R", &c->R, err, n) || get_int(o, "nd", &c->nd, err, n))
        goto done;
    const cJSON *ht = cJSON_GetObjectItemCaseSensitive(o, "ht_weights");
    if (!cJSON_IsArray(ht) || cJSON_GetArraySize(ht) != 3) {
        snprintf(err, n, "config: 'ht_weights' must be an array of 3 numbers");
        goto done;
    }
    for (int i = 0; i < 3; i++) {
        const cJSON *w = cJSON_GetArrayItem(ht, i);
        if (!cJSON_IsNumber(w)) {
            snprintf(err, n, "config: 'ht_weights' must be an array of 3 numbers");
            goto done;
        }
        c->ht[i] = (float)w->valuedouble;
    }
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scales");
    if (!cJSON_IsArray(sc) || cJSON_GetArraySize(sc) < 1 || cJSON_GetArraySize(sc) > MODEL_MAX_SCALES) {
        snprintf(err, n, "config: 'scales' must be an array of 1 to %d integers", MODEL_MAX_SCALES);
        goto done;
    }
    c->num_scales = cJSON_GetArraySize(sc);
    for (int i = 0; i < c->num_scales; i++) {
        const cJSON *s = cJSON_GetArrayItem(sc, i);
        if (!cJSON_IsNumber(s)) {
            snprintf(err, n, "config: 'scales' must hold integers");
            goto done;
        }
        c->scales[i] = s->valueint;
    }
    char why[160];
    if (model_config_check(c, why, sizeof why)) {
        snprintf(err, n, "config: %s", why);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}
