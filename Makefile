# mysnap: build, test, benchmark, demo, install.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
MYSNAP_CACHE ?= $(HOME)/.cache/mysnap
export MYSNAP_CACHE

TOOLS := s3-put s3-get mysql-lock-hold snap-tar lvm-snap mysql-restore-dir
MAN1 := $(TOOLS:%=man/%.1)

.PHONY: all build test deps bench demo install clean

all: build

build:
	$(CARGO) build --release --workspace --bins

# Everything the tests need is installed by tests/setup.sh and cached.
deps:
	tests/setup.sh all

test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

bench: deps build
	bench/s3.sh
	bench/lock.sh
	bench/tar.sh
	bench/restore.sh

demo: build
	tests/setup.sh vm
	tests/demo.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	for t in $(TOOLS); do install -m 0755 target/release/$$t $(DESTDIR)$(PREFIX)/bin/$$t; done
	for m in $(MAN1); do gzip -9n < $$m > $(DESTDIR)$(PREFIX)/share/man/man1/$$(basename $$m).gz; done

clean:
	$(CARGO) clean
