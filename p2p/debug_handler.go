package p2p

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// DebugHandler serves n's sessions over HTTP, for a debug listener, the
// way net/http/pprof serves profiles:
//
//	mux.Handle("/debug/p2p", p2p.DebugHandler(n))
//
// A GET (or HEAD) answers with the table of DumpSessions as text/plain, or
// with the []SessionInfo of Sessions as application/json (see SessionInfo
// for the field names and units) when the query has format=json or the
// request accepts application/json; format=text asks for text whatever
// the Accept header says. With remote=STEAMID it answers with that one
// session: DetailedStatus as text, or its SessionInfo as JSON; 404 if
// there is no such session, 400 if STEAMID is not a number. Other methods
// get 405.
//
// The answers name the peers' IP addresses: mount the handler only where
// those who can reach it may see them, as one would pprof.
func DebugHandler(n *Networking) http.Handler {
	return &debugHandler{list: n.Sessions, one: n.sessionInfoOf}
}

type debugHandler struct {
	list func() []SessionInfo
	one  func(SteamID) (SessionInfo, bool)
}

func (h *debugHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	var asJSON bool
	switch f := q.Get("format"); f {
	case "":
		asJSON = acceptsJSON(r.Header.Values("Accept"))
	case "json":
		asJSON = true
	case "text":
	default:
		http.Error(w, fmt.Sprintf("unknown format %q: use json or text", f), http.StatusBadRequest)
		return
	}
	var body bytes.Buffer
	var err error
	if q.Has("remote") {
		id, perr := strconv.ParseUint(q.Get("remote"), 10, 64)
		if perr != nil {
			http.Error(w, fmt.Sprintf("remote=%q is not a SteamID (a decimal number)", q.Get("remote")), http.StatusBadRequest)
			return
		}
		info, ok := h.one(SteamID(id))
		if !ok {
			http.Error(w, fmt.Sprintf("no session with %d", id), http.StatusNotFound)
			return
		}
		if asJSON {
			err = encodeJSON(&body, info)
		} else {
			err = writeDetail(&body, info)
		}
	} else {
		list := h.list()
		if asJSON {
			err = encodeJSON(&body, list)
		} else {
			err = writeTable(&body, list)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	if asJSON {
		hd.Set("Content-Type", "application/json")
	} else {
		hd.Set("Content-Type", "text/plain; charset=utf-8")
	}
	hd.Set("Content-Length", strconv.Itoa(body.Len()))
	hd.Set("Cache-Control", "no-store")
	hd.Set("Vary", "Accept")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body.Bytes())
	}
}

func encodeJSON(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// acceptsJSON reports whether an Accept header names application/json
// with a quality above zero. Wildcards do not count: a browser's */*
// gets text.
func acceptsJSON(accept []string) bool {
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != "application/json" {
				continue
			}
			if qv, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(qv, 64); err != nil || f <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}
