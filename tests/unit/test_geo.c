/* test_geo.c: country and city lookup, fallbacks, haversine distances and the
 * shape of the generated tables. (The generator's determinism is a shell check.) */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "geo/geo.h"

static bool near(geo_point p, double lat, double lon, double tol)
{
    return fabs(p.lat - lat) <= tol && fabs(p.lon - lon) <= tol;
}

static void test_country(void)
{
    geo_point p = { 0, 0, true };
    CHECK("FR known", geo_locate("FR", NULL, &p) == 0);
    CHECK("FR is near Paris", near(p, 48.86, 2.33, 0.05));
    CHECK("FR is country level", !p.city_level);

    geo_point q = { 0, 0, true };
    CHECK("fr lowercase known", geo_locate("fr", "", &q) == 0);
    CHECK("fr lowercase same point", q.lat == p.lat && q.lon == p.lon && !q.city_level);

    CHECK("US known", geo_locate("US", NULL, &p) == 0);
    CHECK("US is New York", near(p, 40.71, -74.01, 0.05));
    CHECK("UA is Kyiv, not the first zone listed", geo_locate("UA", NULL, &p) == 0 && near(p, 50.43, 30.52, 0.05));
    CHECK("AU is Sydney", geo_locate("AU", NULL, &p) == 0 && near(p, -33.87, 151.22, 0.05));
    CHECK("GB carries seconds and a west sign", geo_locate("GB", NULL, &p) == 0 && near(p, 51.508333, -0.125278, 1e-5));

    p = (geo_point){ 1.0, 2.0, true };
    CHECK("ZZ unknown", geo_locate("ZZ", NULL, &p) == -1);
    CHECK("unknown leaves output alone", p.lat == 1.0 && p.lon == 2.0 && p.city_level);
    CHECK("empty country", geo_locate("", "Paris", &p) == -1);
    CHECK("NULL country", geo_locate(NULL, "Paris", &p) == -1);
    CHECK("three letters refused", geo_locate("FRA", NULL, &p) == -1);
    CHECK("one letter refused", geo_locate("F", NULL, &p) == -1);
    CHECK("non-letters refused", geo_locate("F1", NULL, &p) == -1);
    CHECK("padded code refused", geo_locate(" FR", NULL, &p) == -1);
    CHECK("NULL out", geo_locate("FR", "Paris", NULL) == -1);

    CHECK("name FR", geo_country_name("FR") && strcmp(geo_country_name("FR"), "France") == 0);
    CHECK("name lowercase", geo_country_name("de") && strcmp(geo_country_name("de"), "Germany") == 0);
    CHECK("name keeps UTF-8", geo_country_name("RE") && strcmp(geo_country_name("RE"), "R\xc3\xa9union") == 0);
    CHECK("name unknown", geo_country_name("ZZ") == NULL);
    CHECK("name empty", geo_country_name("") == NULL);
    CHECK("name NULL", geo_country_name(NULL) == NULL);
}

static void test_city(void)
{
    geo_point us = { 0, 0, false }, p = { 0, 0, false };
    geo_locate("US", NULL, &us);

    CHECK("Los Angeles", geo_locate("US", "Los Angeles", &p) == 0);
    CHECK("Los Angeles city level", p.city_level);
    CHECK("Los Angeles coordinates", near(p, 34.052222, -118.242778, 1e-5));
    p = (geo_point){ 0, 0, false };
    CHECK("los_angeles", geo_locate("us", "los_angeles", &p) == 0 && p.city_level &&
                             near(p, 34.05, -118.24, 0.01));
    p = (geo_point){ 0, 0, false };
    CHECK("spaces around city ignored", geo_locate("US", "  LOS ANGELES\t ", &p) == 0 && p.city_level &&
                                            near(p, 34.05, -118.24, 0.01));
    CHECK("nested zone name", geo_locate("AR", "buenos aires", &p) == 0 && p.city_level &&
                                  near(p, -34.6, -58.45, 0.01));
    CHECK("deep zone name", geo_locate("US", "New_Salem", &p) == 0 && p.city_level);

    CHECK("Paris in US falls back", geo_locate("US", "Paris", &p) == 0);
    CHECK("Paris in US is country level", !p.city_level);
    CHECK("Paris in US is the US point", p.lat == us.lat && p.lon == us.lon);

    CHECK("prefix is no match", geo_locate("US", "Los", &p) == 0 && !p.city_level);
    CHECK("longer name is no match", geo_locate("US", "Los Angeles X", &p) == 0 && !p.city_level);
    CHECK("blank city is country", geo_locate("US", "   ", &p) == 0 && !p.city_level);

    char big[300];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "Chicago", 7);
    CHECK("over 255 bytes never matches", geo_locate("US", big, &p) == 0 && !p.city_level);
    big[255] = '\0';
    CHECK("255 bytes may match", geo_locate("US", big, &p) == 0 && p.city_level && near(p, 41.85, -87.65, 0.01));
}

static void test_distance(void)
{
    geo_point paris = { 0, 0, false }, ny = { 0, 0, false };
    geo_locate("FR", "Paris", &paris);
    geo_locate("US", "New York", &ny);
    double d = geo_distance_km(paris, ny);
    CHECK("Paris-New York ~5837 km", fabs(d - 5837.0) <= 15.0);
    CHECK("distance symmetric", fabs(d - geo_distance_km(ny, paris)) < 1e-9);
    CHECK("point to itself is 0", geo_distance_km(paris, paris) == 0.0);

    double half = 6371.0088 * 3.14159265358979323846;
    geo_point a = { 0, 0, false }, b = { 0, 180, false };
    CHECK("antipodes on the equator ~20015 km", fabs(geo_distance_km(a, b) - half) < 0.01 &&
                                                    fabs(geo_distance_km(a, b) - 20015.0) < 1.0);
    geo_point c = { 45, 10, false }, e = { -45, -170, false };
    double de = geo_distance_km(c, e);
    CHECK("antipodes off the equator not NaN", !isnan(de) && fabs(de - half) < 0.01);
    geo_point n = { 90, 0, false }, s = { -90, 0, false };
    CHECK("pole to pole", fabs(geo_distance_km(n, s) - half) < 0.01);
    geo_point w = { 0, -179.5, false }, x = { 0, 179.5, false };
    CHECK("across the antimeridian is short", fabs(geo_distance_km(w, x) - half / 180.0) < 0.01);
}

/* Every code AA..ZZ goes through the public lookup: if the table were out of
 * order the bisection would miss rows and the count would not add up. */
static void test_table(void)
{
    size_t n = geo_country_count();
    CHECK("more than 200 countries", n > 200);

    size_t found = 0;
    bool names_ok = true, ranges_ok = true, levels_ok = true;
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            char code[3] = { a, b, '\0' };
            geo_point p;
            if (geo_locate(code, NULL, &p) != 0) {
                if (geo_country_name(code) != NULL)
                    names_ok = false;
                continue;
            }
            found++;
            const char *name = geo_country_name(code);
            if (!name || !*name)
                names_ok = false;
            if (!(p.lat >= -90.0 && p.lat <= 90.0) || !(p.lon >= -180.0 && p.lon <= 180.0))
                ranges_ok = false;
            if (p.city_level)
                levels_ok = false;
        }
    }
    CHECK("table sorted: every row found by bisection", found == n);
    CHECK("every country has a name", names_ok);
    CHECK("every latitude in [-90,90] and longitude in [-180,180]", ranges_ok);
    CHECK("country points are not city level", levels_ok);
}

int main(void)
{
    test_country();
    test_city();
    test_distance();
    test_table();
    return check_summary();
}
