/* Keyword categorization on case- and accent-folded text (utf8proc). */
#include "taina/category.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <utf8proc.h>

#include "taina/buf.h"
#include "taina/mem.h"

#define MAX_RULES 256

const char tn_category_default_rules[] =
    "# category        priority lang keywords\n"
    "passport          normal   es   pasaporte, pasaportes\n"
    "passport          normal   en   passport, passports\n"
    "national_id       normal   es   cedula, documento de identidad, carnet de identidad\n"
    "national_id       normal   en   id card, identity card, national id\n"
    "driving_licence   normal   es   licencia de conducir, licencia de conduccion, permiso de "
    "conducir\n"
    "driving_licence   normal   en   driving licence, driver's license, drivers license, driving "
    "license\n"
    "civil_registry    normal   es   acta de nacimiento, certificado de nacimiento, acta de "
    "matrimonio, certificado de matrimonio, registro civil\n"
    "civil_registry    normal   en   birth certificate, marriage certificate, civil registry\n"
    "tax               normal   es   impuesto, impuestos, rnc, declaracion jurada, numero de "
    "identificacion fiscal\n"
    "tax               normal   en   tax, taxes, tax id, tax return\n"
    "vehicle           normal   es   matricula, placa, vehiculo, marbete\n"
    "vehicle           normal   en   vehicle registration, licence plate, license plate, vehicle\n"
    "social_benefits   normal   es   subsidio, pension, ayuda social, beneficio, beneficios\n"
    "social_benefits   normal   en   benefit, benefits, pension, allowance, welfare\n"
    "appointments      normal   es   cita, turno, agendar, reservar\n"
    "appointments      normal   en   appointment, booking, book, schedule\n"
    "complaint         high     es   queja, reclamo, denuncia, mal servicio\n"
    "complaint         high     en   complaint, complain, poor service\n"
    "urgent            urgent   *    urgente, urgent, emergencia, emergency\n";

typedef struct rule {
    char *category;
    char *priority;
    char lang[4];   /* "es", "en", "*" */
    char **phrases; /* folded, " word word " */
    int *weights;
    size_t nphrases;
} rule_t;

struct tn_category {
    rule_t rules[MAX_RULES];
    size_t nrules;
};

char *tn_category_fold(const char *text, size_t len)
{
    utf8proc_uint8_t *mapped = NULL;
    /* Decompose, drop combining marks, case-fold. Invalid UTF-8 is folded byte-wise instead. */
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &mapped,
                     UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD);
    const char *src = n >= 0 ? (const char *)mapped : text;
    size_t sl = n >= 0 ? (size_t)n : len;
    char *out = tn_xmalloc(sl + 3);
    size_t o = 0;
    out[o++] = ' ';
    for (size_t i = 0; i < sl;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)src + i, (utf8proc_ssize_t)(sl - i), &cp);
        if (k <= 0) { /* invalid byte: a separator */
            k = 1;
            cp = ' ';
        }
        utf8proc_category_t cat = utf8proc_category(cp);
        int word = cp == '\'' || (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                   (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        if (word) {
            for (utf8proc_ssize_t j = 0; j < k; j++)
                out[o++] = (char)tolower((unsigned char)src[i + (size_t)j]);
        } else if (out[o - 1] != ' ') {
            out[o++] = ' ';
        }
        i += (size_t)k;
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = '\0';
    free(mapped);
    return out;
}

void tn_category_destroy(tn_category_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nrules; i++) {
        rule_t *r = &c->rules[i];
        for (size_t j = 0; j < r->nphrases; j++)
            free(r->phrases[j]);
        free(r->phrases);
        free(r->weights);
        free(r->category);
        free(r->priority);
    }
    free(c);
}

static const char *next_field(const char *s, const char *end, size_t *len)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    *len = 0;
    while (s + *len < end && s[*len] != ' ' && s[*len] != '\t')
        (*len)++;
    return s;
}

tn_category_t *tn_category_new(const char *text, const char *name, char *errbuf, size_t errlen)
{
    tn_category_t *c = tn_xcalloc(1, sizeof(*c));
    const char *src = text ? text : tn_category_default_rules;
    const char *what = name ? name : "category rules";
    int lineno = 0;
    for (const char *line = src; *line;) {
        const char *eol = strchr(line, '\n');
        const char *end = eol ? eol : line + strlen(line);
        lineno++;
        size_t cl, pl, ll;
        const char *cat = next_field(line, end, &cl);
        if (cl == 0 || *cat == '#')
            goto next;
        const char *prio = next_field(cat + cl, end, &pl);
        const char *lang = next_field(prio + pl, end, &ll);
        const char *kw = lang + ll;
        if (pl == 0 || ll == 0 || kw >= end) {
            snprintf(errbuf, errlen, "%s line %d: expected CATEGORY PRIORITY LANG KEYWORDS", what,
                     lineno);
            goto fail;
        }
        if (!((ll == 2 && (!strncmp(lang, "es", 2) || !strncmp(lang, "en", 2))) ||
              (ll == 1 && *lang == '*'))) {
            snprintf(errbuf, errlen, "%s line %d: language must be es, en or *", what, lineno);
            goto fail;
        }
        if (c->nrules == MAX_RULES) {
            snprintf(errbuf, errlen, "%s: more than %d rules", what, MAX_RULES);
            goto fail;
        }
        rule_t *r = &c->rules[c->nrules++];
        r->category = tn_xstrndup(cat, cl);
        r->priority = tn_xstrndup(prio, pl);
        snprintf(r->lang, sizeof(r->lang), "%.*s", (int)ll, lang);
        for (const char *p = kw; p < end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *pe = comma ? comma : end;
            char *folded = tn_category_fold(p, (size_t)(pe - p));
            if (strlen(folded) > 2) {
                int words = 0;
                for (const char *q = folded + 1; *q; q++)
                    words += *q == ' ';
                r->phrases = tn_xrealloc(r->phrases, (r->nphrases + 1) * sizeof(char *));
                r->weights = tn_xrealloc(r->weights, (r->nphrases + 1) * sizeof(int));
                r->phrases[r->nphrases] = folded;
                r->weights[r->nphrases++] = words;
            } else {
                free(folded);
            }
            p = pe + 1;
        }
        if (r->nphrases == 0) {
            snprintf(errbuf, errlen, "%s line %d: no keywords", what, lineno);
            goto fail;
        }
    next:
        line = eol ? eol + 1 : end;
    }
    return c;
fail:
    tn_category_destroy(c);
    return NULL;
}

tn_category_result_t tn_category_classify(const tn_category_t *c, const char *text, size_t len,
                                          const char *lang)
{
    tn_category_result_t best = {"general", "normal", 0};
    char *folded = tn_category_fold(text, len);
    /* Scores summed per category name across its rules (es + * lines of one category). */
    int scores[MAX_RULES] = {0};
    for (size_t i = 0; i < c->nrules; i++) {
        const rule_t *r = &c->rules[i];
        if (r->lang[0] != '*' && lang && strcmp(lang, "und") != 0 && strcmp(r->lang, lang) != 0)
            continue;
        int s = 0;
        for (size_t j = 0; j < r->nphrases; j++)
            for (const char *p = strstr(folded, r->phrases[j]); p; p = strstr(p + 1, r->phrases[j]))
                s += r->weights[j];
        size_t first = i; /* the first rule of this category holds its score */
        for (size_t k = 0; k < i; k++)
            if (strcmp(c->rules[k].category, r->category) == 0) {
                first = k;
                break;
            }
        scores[first] += s;
    }
    for (size_t i = 0; i < c->nrules; i++) {
        if (scores[i] > best.score) {
            best.category = c->rules[i].category;
            best.priority = c->rules[i].priority;
            best.score = scores[i];
        }
    }
    free(folded);
    return best;
}
