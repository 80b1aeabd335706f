# Generated from packager/phasetable.py by `python3 -m packager.phasetable --make > phases.mk`;
# do not edit (tests/test_phasetable.py fails when this file is not what the table generates).
.PHONY: detect repository dockerfile package
detect: $(NOX) ; $(NOX) -s detect -- $(MODEL)
repository: $(NOX) ; $(NOX) -s repository -- $(MODEL)
dockerfile: $(NOX) ; $(NOX) -s dockerfile -- $(MODEL)
package: $(NOX) ; $(NOX) -s package -- $(MODEL)
