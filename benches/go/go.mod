module errgroup-benches

go 1.19

require golang.org/x/sync v0.1.0

// Offline build against the source Debian's golang-golang-x-sync-dev installs.
replace golang.org/x/sync => /usr/share/gocode/src/golang.org/x/sync
