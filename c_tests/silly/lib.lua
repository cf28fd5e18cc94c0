-- Helpers for the silly face tests, run by c_tests/silly/host.c
-- (see host.c for the `host` global).  They play the part of silly's
-- lualib/silly/net/tls.lua: open tls objects on host sockets, push every
-- data event into the owning tls object, and drive handshakes the way
-- tls.lua's EVENT.data does.

local tls = require "silly.tls.tls"
local ctx = require "silly.tls.ctx"

local M = { tls = tls, ctx = ctx }

M.certdir = os.getenv("SILLY_CERTDIR") or "target/certs/silly"
M.pkidir = os.getenv("COROTLS_CERTDIR") or "target/certs"
M.openssl = os.getenv("HARNESS_OPENSSL") or "openssl"

M.ERR_TLS = "TLS error (10005)"
M.ERR_EOF = "End of file (10004)"
M.ERR_CLOSED = "Socket is closed (10003)"

function M.readfile(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("a")
	f:close()
	return s
end

-- {cert=, key=} from the silly test certificates (a, b, default, weak)
function M.pair(name)
	return {
		cert = M.readfile(M.certdir .. "/" .. name .. ".crt"),
		key = M.readfile(M.certdir .. "/" .. name .. ".key"),
	}
end

function M.pki(name)
	return M.readfile(M.pkidir .. "/" .. name)
end

-- ALPN wire format, as tls.lua builds it
function M.wire(list)
	local t = {}
	for i, v in ipairs(list) do
		t[i] = string.char(#v) .. v
	end
	return table.concat(t)
end

M.ok = host.ok

function M.eq(got, want, msg)
	local ok = got == want
	if not ok then
		host.diag(string.format("%s: got %q, want %q", msg, tostring(got), tostring(want)))
	end
	return host.ok(ok, msg)
end

-- Run f and expect it to raise an error containing `want` (plain text).
function M.raises(f, want, msg)
	local ok, err = pcall(f)
	local good = not ok and type(err) == "string" and err:find(want, 1, true) ~= nil
	if not good then
		host.diag(string.format("%s: pcall gave %s, %q; want an error with %q",
			msg, tostring(ok), tostring(err), want))
	end
	return host.ok(good, msg)
end

-- ---------------------------------------------------------------- ends

-- An end is one tls object on one host socket:
--   e.fd, e.t (tls object), e.total (size returned by the last push),
--   e.hs (nil: no handshake started, -1 waiting, 1 done, 0 failed),
--   e.alpn / e.err (handshake results), e.closed (close event error),
--   e.held (when a table: data events are stored there, not pushed),
--   e.on_data(e) / e.on_close(e) (optional hooks)
local ends = {}
M.ends = ends
-- Called with the fd of each accepted connection (a listener's accept).
M.on_accept = function(fd)
	host.close(fd)
end

function M.open(c, fd, hostname, alpn)
	local e = { fd = fd, t = tls.open(c, fd, hostname, alpn), total = 0 }
	ends[fd] = e
	return e
end

local function hs_step(e)
	local r, x = tls.handshake(e.t)
	e.hs = r
	if r == 1 then
		e.alpn = x
	elseif r == 0 then
		e.err = x
	end
	return r, x
end

-- Start the handshake as tls.lua does (one call; -1 means wait for data).
function M.start(e)
	return hs_step(e)
end

-- One round of the event loop.
function M.pump(timeout)
	local evs = host.poll(timeout or 10)
	for _, ev in ipairs(evs) do
		if ev.ev == "data" then
			local e = ends[ev.fd]
			if e and e.held then
				-- the test pushes these itself
				e.held[#e.held + 1] = { ptr = ev.ptr, size = ev.size }
			elseif e and e.t then
				e.total = tls.push(e.t, ev.ptr, ev.size)
				if e.hs == -1 then
					hs_step(e)
				end
				if e.on_data then
					e.on_data(e)
				end
			else
				host.free(ev.ptr) -- nobody owns this socket any more
			end
		elseif ev.ev == "close" then
			local e = ends[ev.fd]
			if e then
				e.closed = ev.err
				if e.on_close then
					e.on_close(e)
				end
			end
		elseif ev.ev == "accept" then
			M.on_accept(ev.conn)
		end
	end
	return #evs
end

-- Pump until cond() is true; false after ms milliseconds.
function M.wait(cond, ms)
	local deadline = host.now() + (ms or 10000)
	while not cond() do
		if host.now() > deadline then
			return false
		end
		M.pump(5)
	end
	return true
end

-- Forget an end and close its socket (the tls object is left to the caller).
function M.drop(e)
	ends[e.fd] = nil
	host.close(e.fd)
end

-- A client/server pair over a socketpair, handshake driven to its end.
-- opts: host (SNI), alpn (client offer, wire format)
function M.connect(cctx, sctx, opts)
	opts = opts or {}
	local a, b = host.socketpair()
	local c = M.open(cctx, a, opts.host, opts.alpn)
	local s = M.open(sctx, b)
	M.start(s)
	M.start(c)
	M.wait(function()
		return c.hs ~= -1 and s.hs ~= -1
	end)
	return c, s
end

-- Read from an end: like conn:read (n | delim), waiting for data.
function M.read(e, what, ms)
	local deadline = host.now() + (ms or 10000)
	while true do
		local d, size = tls.read(e.t, what)
		if d then
			return d, size
		end
		if e.closed or host.now() > deadline then
			return nil, size
		end
		M.pump(5)
	end
end

-- Run `openssl ARGS...`, pumping events until it exits; returns its output.
function M.run_openssl(args, ms)
	local out = os.tmpname()
	local argv = { M.openssl }
	for _, a in ipairs(args) do
		argv[#argv + 1] = a
	end
	local pid = host.spawn(argv, out)
	local status
	M.wait(function()
		status = host.wait(pid)
		return status ~= nil
	end, ms or 20000)
	local text = M.readfile(out)
	os.remove(out)
	return text, status
end

return M
