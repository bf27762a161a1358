-- Search benchmark data (ops/bench/search.sh): 12 states, 48 cities, 1,030
-- locker points and 10,300 lockers, with Indian place names as people write
-- them, accents included (Bengalūru, Mahārāshtra, Bāndra). Every address
-- contains "Road"; one point in eight is at a "Metro Station". About a third
-- of the lockers are not available (reserved, occupied or in maintenance).
-- Deterministic: the same rows every run.
BEGIN;

CREATE TEMP TABLE bench_cities (state text, city text, n int);
INSERT INTO bench_cities (state, city, n)
SELECT s.state, c.city, row_number() OVER () - 1
FROM (VALUES
    ('Karnātaka',     ARRAY['Bengalūru', 'Mysūru', 'Mangaluru', 'Hubballi']),
    ('Mahārāshtra',   ARRAY['Mumbai', 'Pune', 'Nāgpur', 'Nāshik']),
    ('Tamil Nādu',    ARRAY['Chennai', 'Coimbatore', 'Madurai', 'Tiruchirāppalli']),
    ('Goa',           ARRAY['Panaji', 'Margão', 'Vāsco da Gama', 'Mapusa']),
    ('Kerala',        ARRAY['Kochi', 'Thiruvananthapuram', 'Kozhikode', 'Thrissur']),
    ('Telangāna',     ARRAY['Hyderābād', 'Warangal', 'Nizāmābād', 'Karimnagar']),
    ('West Bengal',   ARRAY['Kolkata', 'Howrah', 'Durgāpur', 'Siliguri']),
    ('Gujarāt',       ARRAY['Ahmedābād', 'Surat', 'Vadodara', 'Rājkot']),
    ('Rājasthān',     ARRAY['Jaipur', 'Udaipur', 'Jodhpur', 'Ajmer']),
    ('Uttar Pradesh', ARRAY['Lucknow', 'Vārānasi', 'Kānpur', 'Āgra']),
    ('Punjab',        ARRAY['Amritsar', 'Ludhiāna', 'Jalandhar', 'Patiāla']),
    ('Delhi',         ARRAY['New Delhi', 'Dwārka', 'Rohini', 'Shāhdara'])
) AS s (state, cities), unnest(s.cities) AS c (city);

INSERT INTO states (id, name)
SELECT gen_random_uuid(), state FROM (SELECT DISTINCT state FROM bench_cities) s;
INSERT INTO cities (id, state_id, name)
SELECT gen_random_uuid(), s.id, b.city FROM bench_cities b JOIN states s ON s.name = b.state;

-- 60 localities x 17 landmarks name 1,020 points; the rest repeat with a number.
CREATE TEMP TABLE bench_points AS
WITH localities AS (
    SELECT l, row_number() OVER () - 1 AS n FROM unnest(ARRAY[
        'Koramangala', 'Indiranagar', 'Jayanagar', 'Whitefield', 'Malleshwaram', 'Andheri', 'Bāndra', 'Colāba',
        'Powai', 'Kothrud', 'Deccan Gymkhāna', 'T. Nagar', 'Adyar', 'Mylapore', 'Velachery', 'Fontainhas',
        'Miramar', 'Calangute', 'Fort Kochi', 'Kakkanād', 'Banjāra Hills', 'Gachibowli', 'Secunderābād',
        'Salt Lake', 'Park Street', 'Ballygunge', 'Navrangpura', 'Satellite', 'Malviya Nagar', 'Vaishāli Nagar',
        'Hazratganj', 'Gomti Nagar', 'Connaught Place', 'Hauz Khās', 'Karol Bāgh', 'Lajpat Nagar', 'Sadar Bāzār',
        'Civil Lines', 'Rāja Pārk', 'Chāndni Chowk', 'Electronic City', 'HSR Layout', 'BTM Layout', 'Marathahalli',
        'Hebbal', 'Yelahanka', 'Bellandur', 'Sarjāpur', 'Jubilee Hills', 'Kondāpur', 'Anna Nagar', 'Besant Nagar',
        'Vile Parle', 'Dādar', 'Worli', 'Chembur', 'Aundh', 'Hinjewadi', 'Viman Nagar', 'Kalyāni Nagar'
    ]) AS l
), landmarks AS (
    SELECT m, row_number() OVER () - 1 AS n FROM unnest(ARRAY[
        'Metro Station', 'Bus Stand', 'Market', 'Mall', 'Railway Station', 'Tech Park', 'Post Office',
        'Hospital', 'Café Corner', 'Circle', 'Main Gate', 'Supermarket', 'College', 'Temple Street',
        'Apartments', 'Clock Tower', 'Food Court'
    ]) AS m
), roads AS (
    SELECT r, row_number() OVER () - 1 AS n FROM unnest(ARRAY[
        'MG Road', '80 Feet Road', 'Station Road', 'Main Road', 'Ring Road', 'Rua de Ourém Road',
        'Linking Road', 'Nehru Road', 'Gāndhi Road', 'Church Road', 'Lake Road', 'Hill Road'
    ]) AS r
), numbered AS (SELECT i FROM generate_series(0, 1029) AS i)
SELECT i,
       l.l || ' ' || m.m || CASE WHEN i >= 1020 THEN ' ' || (i / 1020 + 1) ELSE '' END AS name,
       (i % 97 + 1) || ', ' || r.r || ', ' || l.l AS address,
       i % 48 AS city_n
FROM numbered
JOIN localities l ON l.n = i % 60
JOIN landmarks m ON m.n = (i / 60) % 17
JOIN roads r ON r.n = i % 12;

INSERT INTO locker_points (id, city_id, name, address, controller_token_hash)
SELECT gen_random_uuid(), c.id, p.name, p.address, sha256(convert_to('bench point ' || p.i, 'UTF8'))
FROM bench_points p JOIN bench_cities b ON b.n = p.city_n
JOIN states s ON s.name = b.state JOIN cities c ON c.state_id = s.id AND c.name = b.city;

INSERT INTO lockers (id, point_id, door_no, size, status)
SELECT gen_random_uuid(), p.id, d,
       (ARRAY['S', 'S', 'S', 'M', 'M', 'M', 'M', 'L', 'L', 'XL'])[d],
       CASE WHEN (hashtext(p.id::text) + d) % 3 = 0
            THEN (ARRAY['reserved', 'occupied', 'maintenance'])[abs(hashtext(p.id::text || d)) % 3 + 1]
            ELSE 'available' END
FROM locker_points p, generate_series(1, 10) AS d;

COMMIT;
ANALYZE states; ANALYZE cities; ANALYZE locker_points; ANALYZE lockers;
