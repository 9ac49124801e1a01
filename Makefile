# mysnap: build, test, benchmark, demo, install, Debian and RPM packages.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
CARGO ?= cargo
MYSNAP_CACHE ?= $(HOME)/.cache/mysnap
export MYSNAP_CACHE

TOOLS := s3-put s3-get mysql-lock-hold snap-tar lvm-snap mysql-restore-dir mysql-binlog-archive mysql-binlog-replay s3-prune mysql-verify-backup
MANPAGES = $(wildcard man/*.[157])
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml)
space := $(subst ,, )
# The units run the tools as /usr/bin/TOOL; another BINDIR is written in at install.
UNIT_PATHS := s\#/usr/bin/($(subst $(space),|,$(TOOLS)))\>\#$(BINDIR)/\1\#g
# dpkg-buildpackage writes its results beside the source tree: stage it in target/debian.
DEB_STAGE := target/debian/mysnap-$(VERSION)

.PHONY: all build test deps bench demo install install-built deb rpm packages clean

all: build

build:
	$(CARGO) build --release --workspace --bins

# Everything the tests need is installed by tests/setup.sh and cached.
deps:
	tests/setup.sh all

# tests/packages.rs and the VM tests use the packages.
test: deps packages
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

bench: deps build
	bench/s3.sh
	bench/lock.sh
	bench/tar.sh
	bench/restore.sh
	bench/binlog.sh
	bench/replay.sh
	bench/prune.sh
	bench/verify.sh

# The demo installs the .deb in the test VM.
demo: deps deb
	tests/demo.sh

install: build
	$(MAKE) install-built

# What 'make build' built, without building: the RPM's %install runs this.
install-built:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(TOOLS:%=target/release/%) $(DESTDIR)$(BINDIR)/
	for u in units/*.service units/*.timer; do \
		sed -E '$(UNIT_PATHS)' $$u > $(DESTDIR)$(UNITDIR)/$${u#units/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u#units/} || exit 1; \
	done
	for m in $(MANPAGES); do \
		install -d $(DESTDIR)$(MANDIR)/man$${m##*.} && \
		gzip -9n < $$m > $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}.gz || exit 1; \
	done
	install -d -m 0700 $(DESTDIR)/etc/mysnap
	install -m 0600 units/example.conf $(DESTDIR)/etc/mysnap/example.conf

packages: deb rpm

deb: build
	@test "$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)" = "$(VERSION)" || \
		{ echo "packaging/debian/changelog is not at version $(VERSION) of Cargo.toml" >&2; exit 1; }
	rm -rf target/debian
	mkdir -p $(DEB_STAGE)/bin
	cp -r packaging/debian units man $(DEB_STAGE)/
	cp $(TOOLS:%=target/release/%) $(DEB_STAGE)/bin/
	cd $(DEB_STAGE) && dpkg-buildpackage --build=binary --no-sign
	@ls target/debian/*.deb

# rpmbuild's scripts, database and results all stay under target/rpm.
rpm: build
	rm -rf target/rpm
	rpmbuild -bb --define "_topdir $(CURDIR)/target/rpm" --define "_tmppath $(CURDIR)/target/rpm/tmp" \
		--define "_dbpath $(CURDIR)/target/rpm/db" --define "_sourcedir $(CURDIR)" \
		--define "mysnap_version $(VERSION)" packaging/mysnap.spec
	@ls target/rpm/RPMS/*/*.rpm

clean:
	$(CARGO) clean
