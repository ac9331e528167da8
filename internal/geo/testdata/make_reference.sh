#!/bin/sh
# Regenerates gdal_reference.csv: points in and around New York located in TLC's taxi zone shapefile
# by GDAL/OGR (PROJ for the projection, SpatiaLite/GEOS for point-in-polygon) — software nobody on
# this project wrote. Needs Debian's gdal-bin (GDAL 3.6.2, PROJ 9.1.1, SpatiaLite 5.0.1 were used).
#
#   sh internal/geo/testdata/make_reference.sh ../shared/data/tlc/zones/taxi_zones.zip > internal/geo/testdata/gdal_reference.csv
#
# Columns: lon,lat (WGS 84 degrees, the input), x,y (EPSG:2263 US feet, by PROJ through ogr2ogr),
# location_ids (the zones whose official polygon contains the point per ST_Within, ';'-separated,
# ascending; empty outside every zone; OBJECTID, i.e. the lookup's LocationID).
set -eu
zip=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - > "$tmp/pts.csv" <<'PY'
import random
r = random.Random(18)
print("id,lon,lat")
pts = []
# Uniform over the zones' bounding box (~40.49..40.92 N, 74.26..73.70 W) ...
for _ in range(2000):
    pts.append((r.uniform(-74.26, -73.70), r.uniform(40.49, 40.92)))
# ... and denser where trips are: Manhattan south of 110th St, and the two airports.
for _ in range(800):
    pts.append((r.uniform(-74.02, -73.93), r.uniform(40.70, 40.80)))
for _ in range(100):
    pts.append((r.uniform(-73.83, -73.74), r.uniform(40.62, 40.67)))
for _ in range(100):
    pts.append((r.uniform(-73.89, -73.85), r.uniform(40.76, 40.79)))
for i, (lon, lat) in enumerate(pts):
    print("%d,%.7f,%.7f" % (i, lon, lat))
PY
ogr2ogr -q -f SQLite -dsco SPATIALITE=YES "$tmp/ref.sqlite" "/vsizip/$zip/taxi_zones.shp" -nln zones -nlt MULTIPOLYGON
ogr2ogr -q -update -append "$tmp/ref.sqlite" "$tmp/pts.csv" -nln pts -oo X_POSSIBLE_NAMES=lon -oo Y_POSSIBLE_NAMES=lat \
  -oo KEEP_GEOM_COLUMNS=YES -s_srs EPSG:4326 -t_srs EPSG:2263
echo "lon,lat,x,y,location_ids"
ogrinfo -q -ro -dialect SQLite -sql "
  SELECT p.lon AS lon, p.lat AS lat, printf('%.4f', ST_X(p.geometry)) AS x, printf('%.4f', ST_Y(p.geometry)) AS y,
         (SELECT group_concat(id, ';') FROM (SELECT z.objectid AS id FROM zones z
            WHERE ST_Within(p.geometry, z.geometry) ORDER BY z.objectid)) AS ids
  FROM pts p ORDER BY CAST(p.id AS INTEGER)" "$tmp/ref.sqlite" |
  awk -F' = ' '/^  lon \(/{lon=$2} /^  lat \(/{lat=$2} /^  x \(/{x=$2} /^  y \(/{y=$2}
               /^  ids \(/{ids=($2=="(null)")?"":$2; print lon","lat","x","y","ids}'
