#!/bin/sh
# gen-geo.sh: regenerates src/geo/zones.inc, the country and city coordinate
# tables behind travel_km()/travel_kmh(), from Debian tzdata's zone.tab and
# iso3166.tab. POSIX sh + awk only, so it runs on a bare build machine.
#
# Usage: scripts/gen-geo.sh [OUTPUT]    (default: src/geo/zones.inc)
# Env:   TZ_ZONE_TAB (default /usr/share/zoneinfo/zone.tab)
#        TZ_ISO_TAB  (default /usr/share/zoneinfo/iso3166.tab)
#
# Same input gives byte-identical output: everything runs in the C locale, the
# tables are sorted here, and nothing time- or host-dependent goes in the file.
set -eu

LC_ALL=C
export LC_ALL

prog=gen-geo.sh
root=$(cd "$(dirname "$0")/.." && pwd)
zone_tab=${TZ_ZONE_TAB:-/usr/share/zoneinfo/zone.tab}
iso_tab=${TZ_ISO_TAB:-/usr/share/zoneinfo/iso3166.tab}
out=${1:-$root/src/geo/zones.inc}

for pair in "TZ_ZONE_TAB=$zone_tab" "TZ_ISO_TAB=$iso_tab"; do
    var=${pair%%=*}
    f=${pair#*=}
    if [ ! -r "$f" ] || [ ! -f "$f" ]; then
        echo "$prog: cannot read $f (set $var to override)." >&2
        echo "$prog: it comes with Debian's tzdata package: apt-get install tzdata" >&2
        exit 1
    fi
done

# tzdata.zi sits next to zone.tab and names the release on its first line.
tz_version=unknown
zi="$(dirname "$zone_tab")/tzdata.zi"
if [ -r "$zi" ]; then
    v=$(sed -n '1s/^# version \([0-9A-Za-z.]*\)$/\1/p' "$zi")
    [ -n "$v" ] && tz_version=$v
fi

# Where a country spans several zones, the zone of its capital or largest city
# stands for it. "A|B" lists a zone's names across tzdata renames; one of them
# must be in zone.tab under that country, otherwise generation fails, so that a
# rename or removal is noticed instead of silently falling back to another zone.
# Countries not listed here take the first zone zone.tab gives for them.
GEO_OVERRIDES='
AR America/Argentina/Buenos_Aires
AU Australia/Sydney
BR America/Sao_Paulo
CA America/Toronto
CD Africa/Kinshasa
CL America/Santiago
CN Asia/Shanghai
CY Asia/Nicosia
DE Europe/Berlin
EC America/Guayaquil
ES Europe/Madrid
FM Pacific/Pohnpei|Pacific/Ponape
GL America/Nuuk|America/Godthab
ID Asia/Jakarta
KI Pacific/Tarawa
KZ Asia/Almaty
MH Pacific/Majuro
MN Asia/Ulaanbaatar|Asia/Ulan_Bator
MX America/Mexico_City
MY Asia/Kuala_Lumpur
NZ Pacific/Auckland
PF Pacific/Tahiti
PG Pacific/Port_Moresby
PS Asia/Hebron
PT Europe/Lisbon
RU Europe/Moscow
UA Europe/Kyiv|Europe/Kiev
US America/New_York
UZ Asia/Tashkent
'
export GEO_OVERRIDES

# Written beside the target and renamed into place, so a failed run never
# leaves a truncated table behind.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

awk -v zone_tab="$zone_tab" -v iso_tab="$iso_tab" -v tz_version="$tz_version" '
function die(msg) {
    printf "%s: %s\n", "gen-geo.sh", msg | "cat 1>&2"
    exit 1
}

function is_digits(s) { return s ~ /^[0-9]+$/ }

# One half of an ISO 6709 pair: sign, ndeg degree digits, then MM or MMSS.
function coord(s, ndeg, maxdeg, where,    sign, rest, d, m, sec, v) {
    sign = substr(s, 1, 1)
    rest = substr(s, 2)
    if ((sign != "+" && sign != "-") || !is_digits(rest) ||
        (length(rest) != ndeg + 2 && length(rest) != ndeg + 4))
        die(where ": malformed coordinate " s)
    d = substr(rest, 1, ndeg) + 0
    m = substr(rest, ndeg + 1, 2) + 0
    sec = length(rest) == ndeg + 4 ? substr(rest, ndeg + 3, 2) + 0 : 0
    if (m >= 60 || sec >= 60)
        die(where ": minutes or seconds out of range in " s)
    v = d + m / 60 + sec / 3600
    if (v > maxdeg)
        die(where ": degrees out of range in " s)
    # No "-0.000000" in the output.
    if (sign == "-" && v != 0)
        v = -v
    return sprintf("%.6f", v)
}

# Country names are UTF-8; octal escapes keep the generated C pure ASCII and
# cannot swallow a following character the way \x escapes would.
function cstr(s,    i, c, r) {
    r = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\" || c == "\"")
            r = r "\\" c
        else if (c in ord)
            r = r sprintf("\\%03o", ord[c])
        else
            r = r c
    }
    return "\"" r "\""
}

# Insertion sort of keys k[1..n] in byte order (the locale is C); a few hundred
# rows, so simplicity wins.
function sort_keys(k, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = k[i]
        for (j = i - 1; j >= 1 && k[j] > t; j--)
            k[j + 1] = k[j]
        k[j + 1] = t
    }
}

BEGIN {
    for (i = 1; i < 32; i++) ord[sprintf("%c", i)] = i
    for (i = 127; i < 256; i++) ord[sprintf("%c", i)] = i

    lineno = 0
    while ((r = (getline line < iso_tab)) > 0) {
        lineno++
        if (line ~ /^#/ || line == "") continue
        nf = split(line, f, "\t")
        if (nf != 2 || f[1] !~ /^[A-Z][A-Z]$/ || f[2] == "")
            die(iso_tab ":" lineno ": expected CODE<tab>NAME")
        if (f[1] in cname)
            die(iso_tab ":" lineno ": duplicate country " f[1])
        cname[f[1]] = f[2]
        ncodes++
        codes[ncodes] = f[1]
    }
    if (r < 0) die("cannot read " iso_tab)
    close(iso_tab)

    lineno = 0
    while ((r = (getline line < zone_tab)) > 0) {
        lineno++
        if (line ~ /^#/ || line == "") continue
        nf = split(line, f, "\t")
        where = zone_tab ":" lineno
        if (nf < 3 || f[1] !~ /^[A-Z][A-Z]$/ || f[3] == "")
            die(where ": expected CODE<tab>COORDINATES<tab>TZ")
        if (!(f[1] in cname))
            die(where ": country " f[1] " is not in " iso_tab)
        if (f[3] in zone_seen)
            die(where ": duplicate zone " f[3])
        zone_seen[f[3]] = 1
        # The longitude starts at the second sign.
        p = match(substr(f[2], 2), /[+-]/)
        if (p == 0) die(where ": malformed coordinates " f[2])
        lat = coord(substr(f[2], 1, p), 2, 90, where)
        lon = coord(substr(f[2], p + 1), 3, 180, where)

        zlat[f[1], f[3]] = lat
        zlon[f[1], f[3]] = lon
        if (!(f[1] in first)) first[f[1]] = f[3]

        city = f[3]
        sub(/.*\//, "", city)
        gsub(/_/, " ", city)
        nz++
        zkeys[nz] = f[1] "\t" city "\t" f[3]
        zrow[zkeys[nz]] = "\t{ \"" f[1] "\", " cstr(city) ", " lat ", " lon " },"
    }
    if (r < 0) die("cannot read " zone_tab)
    close(zone_tab)
    if (nz == 0) die(zone_tab ": no zones")

    n = split(ENVIRON["GEO_OVERRIDES"], ol, "\n")
    for (i = 1; i <= n; i++) {
        if (ol[i] == "") continue
        if (split(ol[i], of, " ") != 2 || of[1] !~ /^[A-Z][A-Z]$/)
            die("bad override line: " ol[i])
        if (of[1] in pick)
            die("override for " of[1] " given twice")
        na = split(of[2], alt, "|")
        pick[of[1]] = ""
        for (j = 1; j <= na; j++)
            if ((of[1], alt[j]) in zlat) { pick[of[1]] = alt[j]; break }
        if (pick[of[1]] == "")
            die("override " of[1] " " of[2] ": no such zone for " of[1] " in " zone_tab \
                " (tzdata rename? update GEO_OVERRIDES in scripts/gen-geo.sh)")
    }

    nc = 0
    missing = ""
    for (i = 1; i <= ncodes; i++) {
        c = codes[i]
        if (!(c in first)) { missing = missing " " c; continue }
        z = (c in pick) ? pick[c] : first[c]
        nc++
        ckeys[nc] = c
        crow[c] = "\t{ \"" c "\", " cstr(cname[c]) ", " zlat[c, z] ", " zlon[c, z] " }, /* " z " */"
    }
    sort_keys(ckeys, nc)
    sort_keys(zkeys, nz)
    for (i = 2; i <= nc; i++)
        if (ckeys[i] == ckeys[i - 1]) die("duplicate country " ckeys[i])
    for (i = 2; i <= nz; i++) {
        split(zkeys[i - 1], a, "\t"); split(zkeys[i], b, "\t")
        if (a[1] == b[1] && a[2] == b[2]) die("two zones of " a[1] " share the city name " a[2])
    }

    print "/*"
    print " * zones.inc: GENERATED by scripts/gen-geo.sh. Do not edit; rerun the script."
    print " * Sources: " zone_tab " and " iso_tab
    print " *          (tzdata " tz_version ")."
    print " *"
    print " * geo_country_rows: one point per ISO 3166 country, sorted by code: its only"
    print " * tz zone, or for multi-zone countries the zone picked in the script (capital"
    print " * or largest city), else the first one zone.tab lists. Countries in"
    print " * iso3166.tab without any zone in zone.tab are left out:" (missing == "" ? " none" : missing) "."
    print " * geo_city_rows: one row per zone.tab zone, city = last part of the zone name"
    print " * with _ as space, sorted by (country, city) in byte order."
    print " * Coordinates are decimal degrees from zone.tab ISO 6709, north and east positive."
    print " */"
    print ""
    print "static const struct geo_country_row geo_country_rows[] = {"
    for (i = 1; i <= nc; i++) print crow[ckeys[i]]
    print "};"
    print ""
    print "static const struct geo_city_row geo_city_rows[] = {"
    for (i = 1; i <= nz; i++) print zrow[zkeys[i]]
    print "};"

    printf "%s: %d countries, %d cities (tzdata %s)\n", "gen-geo.sh", nc, nz, tz_version | "cat 1>&2"
}
' > "$tmp"

mv "$tmp" "$out"
trap - EXIT HUP INT TERM
