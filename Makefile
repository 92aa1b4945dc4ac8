# Build and install TaskShed like a system package.
#
#   make                      release build of taskshedd and taskshedctl, their man pages and completions
#   sudo make install         installs under PREFIX (default /usr/local); builds nothing that is already built
#   make install DESTDIR=/tmp/root PREFIX=/usr    staged install, as any user (what a package build does)
#   sudo make uninstall       removes exactly the files install put (same PREFIX/DESTDIR as the install)
#
# The config file goes to SYSCONFDIR/taskshed/taskshedd.toml: /etc for PREFIX=/usr, else PREFIX/etc
# (/usr/local/etc by default); the installed unit's --config names that path.
#
# The man pages come from the argument parser's own definitions (swift-argument-parser's generate-manual tool,
# the one its GenerateManual plugin runs), with the sections it cannot know appended from docs/man/*.extra.
# The completion scripts come from `taskshedctl --generate-completion-script`. Both are written to GEN_DIR.

PREFIX ?= /usr/local
DESTDIR ?=
# taskshedd goes to bin, not sbin: it is also the developer's per-user daemon (run without flags, as yourself),
# and Debian's default PATH for users has no sbin. Its man page is still in section 8 (system daemons).
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/taskshed
# The GNU convention: configuration in $(PREFIX)/etc (/usr/local/etc), except that a system package
# (PREFIX=/usr) keeps it in /etc.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# systemd looks for vendor units, sysusers.d and tmpfiles.d snippets under both /usr/lib and /usr/local/lib.
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPLETIONDIR ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPLETIONDIR ?= $(PREFIX)/share/fish/vendor_completions.d

SWIFT ?= swift
CONFIGURATION ?= release
# Where the two executables are; the tests set it to the debug build they already have.
BUILD_DIR ?= .build/$(CONFIGURATION)
# Where the man pages and completion scripts are generated.
GEN_DIR ?= .build/generated
# The resolved swift-argument-parser checkout, and where its generate-manual tool is built (apart from the
# package's own build, so that building it never rebuilds or locks the package).
ARGUMENT_PARSER_DIR ?= .build/checkouts/swift-argument-parser
TOOLS_DIR ?= .build/tools
GENERATE_MANUAL = $(TOOLS_DIR)/debug/generate-manual
# The date printed in the man pages: the last commit's, so that a rebuild of the same source gives the same file.
MAN_DATE ?= $(shell git log -1 --format=%cs 2>/dev/null || date +%F)

# The paths the units in systemd/ name; install replaces them with $(BINDIR)/taskshedd and the installed config.
UNIT_BINARY = /usr/local/bin/taskshedd
UNIT_CONFIG = /etc/taskshed/taskshedd.toml

MAN_PAGES = $(GEN_DIR)/man/taskshedd.8 $(GEN_DIR)/man/taskshedctl.1
COMPLETIONS = $(GEN_DIR)/completions/taskshedctl.bash $(GEN_DIR)/completions/_taskshedctl \
	$(GEN_DIR)/completions/taskshedctl.fish

# Every file install puts, relative to DESTDIR. uninstall removes these and nothing else.
INSTALLED_FILES = \
	$(BINDIR)/taskshedd \
	$(BINDIR)/taskshedctl \
	$(MANDIR)/man8/taskshedd.8 \
	$(MANDIR)/man1/taskshedctl.1 \
	$(UNITDIR)/taskshedd.service \
	$(UNITDIR)/taskshedd.socket \
	$(SYSUSERSDIR)/taskshed.conf \
	$(TMPFILESDIR)/taskshed.conf \
	$(DOCDIR)/examples/taskshedd-postgresql.conf \
	$(DOCDIR)/examples/taskshedd-metrics.conf \
	$(SYSCONFDIR)/taskshed/taskshedd.toml \
	$(BASHCOMPLETIONDIR)/taskshedctl \
	$(ZSHCOMPLETIONDIR)/_taskshedctl \
	$(FISHCOMPLETIONDIR)/taskshedctl.fish

.PHONY: all build man completions install uninstall clean-generated print-installed-files

all: build

build:
	$(SWIFT) build -c $(CONFIGURATION) --product taskshedctl
	$(SWIFT) build -c $(CONFIGURATION) --product taskshedd
	$(MAKE) man completions

man: $(MAN_PAGES)

completions: $(COMPLETIONS)

# Only when missing: `make build` (as yourself) keeps them current, and install must not build as root.
$(BUILD_DIR)/taskshedctl $(BUILD_DIR)/taskshedd:
	$(SWIFT) build -c $(CONFIGURATION) --product $(@F)

$(ARGUMENT_PARSER_DIR)/Package.swift:
	$(SWIFT) package resolve

# The plugin (`swift package plugin generate-manual`) would build every product of the package in release mode
# and give every executable the same section; its tool alone needs only the two binaries.
$(GENERATE_MANUAL): | $(ARGUMENT_PARSER_DIR)/Package.swift
	$(SWIFT) build --package-path $(ARGUMENT_PARSER_DIR) --scratch-path $(TOOLS_DIR) --product generate-manual

# $(1): executable, $(2): section. The generator leaves the blank lines between paragraphs of a discussion in
# the page, where mdoc wants .Pp (man --warnings reports each "Empty input line"), and ends with a generic EXIT
# STATUS ("0 on success, >0 if an error occurs") that the .extra file replaces with the real list.
define man_page
$(GEN_DIR)/man/$(1).$(2): $(BUILD_DIR)/$(1) docs/man/$(1).$(2).extra | $(GENERATE_MANUAL)
	@mkdir -p $(GEN_DIR)/man
	$(GENERATE_MANUAL) $(BUILD_DIR)/$(1) --section $(2) --date $(MAN_DATE) --output-directory - \
		| sed -e 's/^$$$$/.Pp/' -e '/^\.Sh "EXIT STATUS"$$$$/,/^\.Ex -std$$$$/d' > $$@.tmp
	cat docs/man/$(1).$(2).extra >> $$@.tmp
	mv $$@.tmp $$@
endef
$(eval $(call man_page,taskshedd,8))
$(eval $(call man_page,taskshedctl,1))

$(GEN_DIR)/completions/taskshedctl.bash: $(BUILD_DIR)/taskshedctl
	@mkdir -p $(@D)
	$(BUILD_DIR)/taskshedctl --generate-completion-script bash > $@.tmp && mv $@.tmp $@
$(GEN_DIR)/completions/_taskshedctl: $(BUILD_DIR)/taskshedctl
	@mkdir -p $(@D)
	$(BUILD_DIR)/taskshedctl --generate-completion-script zsh > $@.tmp && mv $@.tmp $@
$(GEN_DIR)/completions/taskshedctl.fish: $(BUILD_DIR)/taskshedctl
	@mkdir -p $(@D)
	$(BUILD_DIR)/taskshedctl --generate-completion-script fish > $@.tmp && mv $@.tmp $@

# Only the inputs that are missing are prerequisites: those get made, and what exists is installed as it is,
# even when older than its sources (`make build` keeps it current), so that `sudo make install` builds nothing
# that is built already.
INSTALL_INPUTS = $(BUILD_DIR)/taskshedd $(BUILD_DIR)/taskshedctl $(MAN_PAGES) $(COMPLETIONS)
install: $(filter-out $(wildcard $(INSTALL_INPUTS)),$(INSTALL_INPUTS))
	install -D -m 0755 $(BUILD_DIR)/taskshedd $(DESTDIR)$(BINDIR)/taskshedd
	install -D -m 0755 $(BUILD_DIR)/taskshedctl $(DESTDIR)$(BINDIR)/taskshedctl
	install -D -m 0644 $(GEN_DIR)/man/taskshedd.8 $(DESTDIR)$(MANDIR)/man8/taskshedd.8
	install -D -m 0644 $(GEN_DIR)/man/taskshedctl.1 $(DESTDIR)$(MANDIR)/man1/taskshedctl.1
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for f in taskshedd.service taskshedd.socket taskshedd-postgresql.conf; do \
		sed -e 's|$(UNIT_BINARY)|$(BINDIR)/taskshedd|g' -e 's|$(UNIT_CONFIG)|$(SYSCONFDIR)/taskshed/taskshedd.toml|g' \
			systemd/$$f > "$$tmp/$$f"; \
	done; \
	set -x; \
	install -D -m 0644 "$$tmp/taskshedd.service" $(DESTDIR)$(UNITDIR)/taskshedd.service; \
	install -D -m 0644 "$$tmp/taskshedd.socket" $(DESTDIR)$(UNITDIR)/taskshedd.socket; \
	install -D -m 0644 "$$tmp/taskshedd-postgresql.conf" $(DESTDIR)$(DOCDIR)/examples/taskshedd-postgresql.conf
	install -D -m 0644 systemd/taskshedd-metrics.conf $(DESTDIR)$(DOCDIR)/examples/taskshedd-metrics.conf
	@# The config is the operator's once installed: an existing one (edited, perhaps) is kept.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/taskshed/taskshedd.toml ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/taskshed/taskshedd.toml (the example is systemd/taskshedd.toml)"; \
	else \
		tmp=$$(mktemp) && trap 'rm -f "$$tmp"' EXIT && \
		sed 's|$(UNIT_CONFIG)|$(SYSCONFDIR)/taskshed/taskshedd.toml|g' systemd/taskshedd.toml > "$$tmp" && \
		set -x && install -D -m 0644 "$$tmp" $(DESTDIR)$(SYSCONFDIR)/taskshed/taskshedd.toml; \
	fi
	install -D -m 0644 systemd/taskshed.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/taskshed.conf
	install -D -m 0644 systemd/taskshed.tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/taskshed.conf
	install -D -m 0644 $(GEN_DIR)/completions/taskshedctl.bash $(DESTDIR)$(BASHCOMPLETIONDIR)/taskshedctl
	install -D -m 0644 $(GEN_DIR)/completions/_taskshedctl $(DESTDIR)$(ZSHCOMPLETIONDIR)/_taskshedctl
	install -D -m 0644 $(GEN_DIR)/completions/taskshedctl.fish $(DESTDIR)$(FISHCOMPLETIONDIR)/taskshedctl.fish

# Directories stay (bin, man1, systemd/system... are shared with other packages), except TaskShed's own doc
# and config directories, removed when empty. The config file goes too, edited or not: uninstall removes
# exactly what install put (save an edited one first).
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@for d in $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/taskshed; do \
		rmdir "$$d" 2>/dev/null || true; done

print-installed-files:
	@printf '%s\n' $(INSTALLED_FILES)

clean-generated:
	rm -rf $(GEN_DIR)
