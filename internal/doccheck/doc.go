// Package doccheck keeps the project's citations honest: its test fails when a file tracked by
// git cites a section of docs/design.md that has no heading there, when docs/design.md refers to
// one of its own sections that does not exist, or when a file cites the retired contract
// document or an issue number instead of saying what it means (docs/design.md §9.3).
package doccheck
