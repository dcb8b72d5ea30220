/*
 * geo.c: country and city lookup over the tzdata-derived tables in zones.inc,
 * and haversine distance. A spherical Earth is good to about 0.5%, far finer
 * than the error of standing a whole country on one point, which is what
 * impossible-travel checks can tolerate anyway.
 */
#include "geo/geo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct geo_country_row {
    char code[3];
    const char *name;
    double lat, lon;
};

struct geo_city_row {
    char country[3];
    const char *city;
    double lat, lon;
};

#include "zones.inc"

#define GEO_EARTH_RADIUS_KM 6371.0088
#define GEO_CITY_MAX 255
/* Not M_PI: that needs feature macros which a strict -std would hide. */
#define GEO_PI 3.14159265358979323846

#define GEO_NCOUNTRIES (sizeof geo_country_rows / sizeof geo_country_rows[0])
#define GEO_NCITIES (sizeof geo_city_rows / sizeof geo_city_rows[0])

/* ASCII only, so the result never depends on the process locale. */
static char geo_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Case and '_' versus ' ' do not distinguish city names: logs spell them both ways. */
static char geo_fold(char c)
{
    if (c == '_')
        return ' ';
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Validates and upper-cases an alpha-2 code into key; false for anything else. */
static bool geo_code_key(const char *code, char key[3])
{
    if (!code)
        return false;
    for (int i = 0; i < 2; i++) {
        char c = geo_upper(code[i]);
        if (c < 'A' || c > 'Z')
            return false;
        key[i] = c;
    }
    key[2] = '\0';
    return code[2] == '\0';
}

static int geo_country_cmp(const void *key, const void *row)
{
    return strcmp(key, ((const struct geo_country_row *)row)->code);
}

static const struct geo_country_row *geo_find_country(const char *code)
{
    char key[3];
    if (!geo_code_key(code, key))
        return NULL;
    return bsearch(key, geo_country_rows, GEO_NCOUNTRIES, sizeof geo_country_rows[0],
                   geo_country_cmp);
}

static bool geo_city_eq(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] == '\0' || geo_fold(name[i]) != geo_fold(s[i]))
            return false;
    return name[n] == '\0';
}

/* The table is sorted by exact bytes, not by the folded form the match uses, so
 * only the country's run is found by bisection and then scanned (a few dozen rows
 * at most). */
static const struct geo_city_row *geo_find_city(const char *code, const char *city)
{
    if (!city)
        return NULL;
    size_t len = strnlen(city, GEO_CITY_MAX + 1);
    if (len > GEO_CITY_MAX)
        return NULL;
    while (len > 0 && (*city == ' ' || *city == '\t')) {
        city++;
        len--;
    }
    while (len > 0 && (city[len - 1] == ' ' || city[len - 1] == '\t'))
        len--;
    if (len == 0)
        return NULL;

    size_t lo = 0, hi = GEO_NCITIES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(geo_city_rows[mid].country, code) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < GEO_NCITIES && strcmp(geo_city_rows[i].country, code) == 0; i++)
        if (geo_city_eq(geo_city_rows[i].city, city, len))
            return &geo_city_rows[i];
    return NULL;
}

int geo_locate(const char *country, const char *city, geo_point *out)
{
    if (!out)
        return -1;
    const struct geo_country_row *c = geo_find_country(country);
    if (!c)
        return -1;
    const struct geo_city_row *z = geo_find_city(c->code, city);
    if (z)
        *out = (geo_point){ .lat = z->lat, .lon = z->lon, .city_level = true };
    else
        *out = (geo_point){ .lat = c->lat, .lon = c->lon, .city_level = false };
    return 0;
}

static double geo_rad(double deg)
{
    return deg * (GEO_PI / 180.0);
}

double geo_distance_km(geo_point a, geo_point b)
{
    double dlat = geo_rad(b.lat - a.lat);
    double dlon = geo_rad(b.lon - a.lon);
    double s1 = sin(dlat / 2), s2 = sin(dlon / 2);
    double h = s1 * s1 + cos(geo_rad(a.lat)) * cos(geo_rad(b.lat)) * s2 * s2;
    /* Rounding can push h just past 1 for antipodal points, and asin would give NaN. */
    if (h > 1.0)
        h = 1.0;
    if (h < 0.0)
        h = 0.0;
    return 2.0 * GEO_EARTH_RADIUS_KM * asin(sqrt(h));
}

const char *geo_country_name(const char *code)
{
    const struct geo_country_row *c = geo_find_country(code);
    return c ? c->name : NULL;
}

size_t geo_country_count(void)
{
    return GEO_NCOUNTRIES;
}
