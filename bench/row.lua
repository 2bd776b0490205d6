-- wrk script for the ceiling: GET /row.
request = function() return wrk.format("GET", "/row") end
