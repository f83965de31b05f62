-- wrk script of bench-rag: POST the bodies of a file (one JSON body a line) in turn, each
-- thread from its own offset, with the API key of the load's tenant.
--   wrk ... -s post.lua URL -- BODIES_FILE API_KEY
local bodies, i = {}, 0
local counter = 0
function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
end
function init(args)
    for line in io.lines(args[1]) do
        bodies[#bodies + 1] = line
    end
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. args[2]
    i = (id or 0) * 17
end
function request()
    i = i + 1
    return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
