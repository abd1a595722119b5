package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/doctor"
)

// exitContradicted is doctor's exit status when the platform contradicted a
// guess of the profile (docs/refundctl.md).
const exitContradicted = 3

// contradictedError ends a doctor run that found contradictions; main
// exits with exitContradicted.
type contradictedError struct{ n int }

func (e *contradictedError) Error() string {
	return fmt.Sprintf("doctor: %d guess(es) of the platform profile contradicted: see the report and its patch", e.n)
}

type doctorOptions struct {
	platform, order, subOrder string
	refunds                   []string
}

// validate checks the flags; 1688 order ids are numbers (the reasons
// lookup sends them as such) and 1688 refunds are per order.
func (o doctorOptions) validate() error {
	switch o.platform {
	case string(doctor.Taobao), string(doctor.Alibaba):
	default:
		return usagef("--platform %q: want taobao or 1688", cell(o.platform, 40))
	}
	if o.order != "" && !orderIDPattern.MatchString(o.order) {
		return usagef("--order %q: want 1 to 24 digits", cell(o.order, 40))
	}
	if o.subOrder != "" && !orderIDPattern.MatchString(o.subOrder) {
		return usagef("--sub-order %q: want 1 to 24 digits", cell(o.subOrder, 40))
	}
	if o.subOrder != "" && o.platform == string(doctor.Alibaba) {
		return usagef("--sub-order applies to taobao only (a 1688 refund is per order)")
	}
	for _, id := range o.refunds {
		if !refundIDPattern.MatchString(id) {
			return usagef("--refund %q: want 1 to 64 of A-Z a-z 0-9 _ . -", cell(id, 40))
		}
	}
	if len(o.refunds) > doctor.MaxRefunds {
		return usagef("--refund given %d times: at most %d", len(o.refunds), doctor.MaxRefunds)
	}
	return nil
}

func (a *app) doctorCommand() *cobra.Command {
	var o doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor --platform taobao|1688 [--order ID] [--sub-order ID] [--refund ID]...",
		Short: "Check the platform profile's guesses against the configured account (read-only calls only)",
		Long: "Calls the platform configured by UPSTREAM_* (as the worker reads it, UPSTREAM_PROFILE included)\n" +
			"with read-only calls only, and reports for each guess of the platform profile it can observe:\n" +
			"confirmed, contradicted (with what it saw) or not observable with the given ids. It prints a\n" +
			"profile patch, ready for UPSTREAM_PROFILE, that would make the product match what it saw.\n\n" +
			"It never calls an endpoint that can change anything (submit, modify, cancel, message,\n" +
			"return shipment, create, upload), whatever its flags.\n\n" +
			"Exit status: 0 every observable guess confirmed; 3 something contradicted; 1 the platform did\n" +
			"not answer, refused the credentials, or the configuration is wrong; 2 usage.",
		Example: "  refundctl doctor --platform taobao --order 3305075341149134260 --refund 200012345678 --sub-order 3305075341149134261\n" +
			"  refundctl doctor --platform 1688 --order 3305075341149134260 --refund TQ20012345678 --json > doctor.json",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.platform, "platform", "", "taobao or 1688 (required)")
	f.StringVar(&o.order, "order", "", "an order of the account: Taobao lists its refunds; 1688 looks up its refund reasons")
	f.StringVar(&o.subOrder, "sub-order", "", "a Taobao sub-order whose refund form is rendered (read-only)")
	f.StringArrayVar(&o.refunds, "refund", nil, "a refund of the account, queried (Taobao) or looked up (1688); repeat it (up to 10) for refunds in other phases")
	_ = cmd.MarkFlagRequired("platform")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := o.validate(); err != nil {
			return err
		}
		cfg, err := loadUpstream(a.getenv)
		if err != nil {
			return err
		}
		opts := doctor.Options{Platform: doctor.Platform(o.platform), OrderID: o.order, SubOrderID: o.subOrder, RefundIDs: o.refunds}
		if path := a.cfg.ProfilePath; path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("UPSTREAM_PROFILE: %w", err)
			}
			opts.ProfileName, opts.Override = path, b
		}
		rep, err := doctor.Run(cmd.Context(), cfg, opts)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		if a.cfg.JSON {
			err = writeJSON(a.stdout, rep)
		} else {
			err = writeDoctorReport(a.stdout, rep)
		}
		if err != nil {
			return err
		}
		switch rep.Result {
		case doctor.ResultContradicted:
			return &contradictedError{n: rep.Summary.Contradicted}
		case doctor.ResultUnreachable:
			return fmt.Errorf("doctor: the platform at %s did not answer (%s): check UPSTREAM_BASE_URL and the network", rep.BaseURL, lastCallMsg(rep))
		case doctor.ResultRejected:
			return errors.New("doctor: the platform refused the credentials: check UPSTREAM_ACCESS_KEY and UPSTREAM_USER_ID")
		}
		return nil
	})
	return cmd
}

func lastCallMsg(rep *doctor.Report) string {
	if len(rep.Calls) == 0 {
		return "no call made"
	}
	return rep.Calls[len(rep.Calls)-1].Msg
}

// writeDoctorReport writes the human report: the verdicts, the calls, the
// unknown fields, the summary and the patch.
func writeDoctorReport(w io.Writer, rep *doctor.Report) error {
	ew := &errWriter{w: w}
	ids := []string{}
	for _, id := range []struct{ name, v string }{{"order", rep.IDs.Order}, {"sub-order", rep.IDs.SubOrder}, {"refunds", strings.Join(rep.IDs.Refunds, " ")}} {
		if id.v != "" {
			ids = append(ids, id.name+" "+id.v)
		}
	}
	if len(ids) == 0 {
		ids = append(ids, "none")
	}
	ew.printf("Platform %s at %s, profile %s; ids: %s\n\n", rep.Platform, rep.BaseURL, rep.Profile, strings.Join(ids, ", "))

	tw := newTable(ew)
	fmt.Fprintln(tw, "GUESS\tVERDICT\tWHAT DOCTOR SAW")
	for _, c := range rep.Checks {
		var what string
		switch c.Status {
		case doctor.Confirmed:
			what = c.Seen
		case doctor.Contradicted:
			what = c.Seen + " (profile: " + c.Guess + ")"
		default:
			what = c.Detail
		}
		if c.Status != doctor.NotObservable && c.Detail != "" {
			what += "; " + c.Detail
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Key, strings.ReplaceAll(string(c.Status), "_", " "), cell(what, 220))
	}
	_ = tw.Flush()

	ew.printf("\nCalls (all read-only):\n")
	tw = newTable(ew)
	for _, c := range rep.Calls {
		status, code := "-", "-"
		if c.HTTPStatus != 0 {
			status = fmt.Sprint(c.HTTPStatus)
		}
		if c.Code != nil {
			code = fmt.Sprintf("code %d", *c.Code)
		}
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%s\t%s\n", c.Method, cell(c.Path, 80), status, code, c.Outcome, cell(c.Purpose, 100))
	}
	_ = tw.Flush()

	if len(rep.UnknownFields) > 0 {
		ew.printf("\nResponse fields the client's types do not know (nothing reads them):\n")
		tw = newTable(ew)
		for _, u := range rep.UnknownFields {
			fmt.Fprintf(tw, "  %s\t%s\te.g. %s\n", u.Endpoint, cell(u.Field, 80), cell(u.Example, 60))
		}
		_ = tw.Flush()
	}
	s := rep.Summary
	ew.printf("\nResult: %s: %d confirmed, %d contradicted, %d not observable.\n", rep.Result, s.Confirmed, s.Contradicted, s.NotObservable)
	if rep.PatchError != "" {
		ew.printf("\nThe patch below does not validate (%s): resolve it by hand.\n", rep.PatchError)
	}
	ew.printf("\nProfile patch (save it as the UPSTREAM_PROFILE file; see docs/first-day.md):\n\n%s", rep.Patch)
	return ew.err
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
