package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// VoucherField is the multipart field AlibabaUploadVoucher sends the file in
// (upstream alibaba.trade.uploadRefundVoucher: imageData).
const VoucherField = "imageData"

// AlibabaRefundInfo fetches one 1688 refund (A1 POST, profile endpoint alibaba_refund_info).
// The refund id is sent both as the JSON body {"refundId":...} and as the
// refundId query parameter, matching both documented variants.
// Retry class: safe, retried.
func (c *Client) AlibabaRefundInfo(ctx context.Context, refundID string) (Result[RefundInfo], error) {
	const ep = platform.AlibabaRefundInfo
	if err := checkID(string(ep), "refundID", refundID); err != nil {
		return Result[RefundInfo]{}, err
	}
	r, err := c.idRequest(ep, refundID, true)
	if err != nil {
		return Result[RefundInfo]{}, err
	}
	if r.body != nil {
		r.query = url.Values{"refundId": {refundID}}
	}
	return call(ctx, c, r, func(d *RefundInfo, _ json.RawMessage) *APIError {
		d.Phase, _ = c.profile.AlibabaPhase(string(d.Status))
		return nil
	})
}

// AlibabaRefundReasons lists the refund reasons the seller accepts for an
// order and goods status (A2 POST, profile endpoint alibaba_refund_reasons).
// Retry class: safe, retried.
func (c *Client) AlibabaRefundReasons(ctx context.Context, req RefundReasonsRequest) (Result[RefundReasonsResponse], error) {
	const ep = platform.AlibabaRefundReasons
	if req.OrderID <= 0 {
		return Result[RefundReasonsResponse]{}, fmt.Errorf("%s: orderId %d must be positive: %w", ep, req.OrderID, ErrInvalidArgument)
	}
	if req.GoodsStatus == "" {
		return Result[RefundReasonsResponse]{}, fmt.Errorf("%s: goodsStatus is empty: %w", ep, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, true, req)
	if err != nil {
		return Result[RefundReasonsResponse]{}, err
	}
	return call[RefundReasonsResponse](ctx, c, r, nil)
}

// AlibabaUploadVoucher uploads an image to attach to a refund (A3 POST
// multipart, profile endpoint alibaba_upload_voucher, field imageData). The file is read
// into memory (at most Config.MaxVoucherBytes) so it can be sent again: an
// upload only creates an unattached image, so repeating it is harmless.
// Retry class: safe, retried.
func (c *Client) AlibabaUploadVoucher(ctx context.Context, filename string, data io.Reader) (Result[UploadVoucherResponse], error) {
	const ep = platform.AlibabaUploadVoucher
	name, err := cleanFilename(filename)
	if err != nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: %w", ep, err)
	}
	if data == nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: data is nil: %w", ep, ErrInvalidArgument)
	}
	file, err := io.ReadAll(io.LimitReader(data, c.maxVoucher+1))
	if err != nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: read file: %w", ep, err)
	}
	if len(file) == 0 {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: file is empty: %w", ep, ErrInvalidArgument)
	}
	if int64(len(file)) > c.maxVoucher {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: file exceeds %d bytes: %w", ep, c.maxVoucher, ErrInvalidArgument)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename="%s"`, VoucherField, escapeQuotes(name)))
	h.Set("Content-Type", http.DetectContentType(file))
	part, err := mw.CreatePart(h)
	if err != nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: build multipart body: %w", ep, err)
	}
	if _, err := part.Write(file); err != nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: build multipart body: %w", ep, err)
	}
	if err := mw.Close(); err != nil {
		return Result[UploadVoucherResponse]{}, fmt.Errorf("%s: build multipart body: %w", ep, err)
	}
	r := request{endpoint: string(ep), method: http.MethodPost, path: c.profile.Endpoint(ep).Path,
		body: body.Bytes(), contentType: mw.FormDataContentType(), safe: true}
	return call[UploadVoucherResponse](ctx, c, r, nil)
}

// cleanFilename keeps the base name and rejects names that are empty or
// carry control characters (they would end up in a MIME header).
func cleanFilename(filename string) (string, error) {
	name := path.Base(strings.ReplaceAll(filename, `\`, "/"))
	if name == "" || name == "." || name == "/" {
		return "", fmt.Errorf("filename %q is empty: %w", filename, ErrInvalidArgument)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 || len(name) > 255 {
		return "", fmt.Errorf("filename %q is not valid: %w", excerpt.Of(filename, 40), ErrInvalidArgument)
	}
	return name, nil
}

func escapeQuotes(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// AlibabaCreateRefund opens a 1688 refund (A4 POST, profile endpoint alibaba_create_refund)
// and returns its id. Retry class: mutating, never retried (at most once:
// after OutcomeUnknown, reconcile before creating again).
func (c *Client) AlibabaCreateRefund(ctx context.Context, req CreateRefundRequest) (Result[CreateRefundResponse], error) {
	const ep = platform.AlibabaCreateRefund
	switch {
	case req.OrderID <= 0:
		return Result[CreateRefundResponse]{}, fmt.Errorf("%s: orderId %d must be positive: %w", ep, req.OrderID, ErrInvalidArgument)
	case req.DisputeRequest == "":
		return Result[CreateRefundResponse]{}, fmt.Errorf("%s: disputeRequest is empty: %w", ep, ErrInvalidArgument)
	case req.GoodsStatus == "":
		return Result[CreateRefundResponse]{}, fmt.Errorf("%s: goodsStatus is empty: %w", ep, ErrInvalidArgument)
	case strings.TrimSpace(req.Description) == "":
		return Result[CreateRefundResponse]{}, fmt.Errorf("%s: description is empty: %w", ep, ErrInvalidArgument)
	case req.ApplyPayment < 0 || req.ApplyCarriage < 0:
		return Result[CreateRefundResponse]{}, fmt.Errorf("%s: applyPayment %d / applyCarriage %d must not be negative: %w",
			ep, req.ApplyPayment, req.ApplyCarriage, ErrInvalidArgument)
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[CreateRefundResponse]{}, err
	}
	return call[CreateRefundResponse](ctx, c, r, nil)
}

// AlibabaGoodsReturn submits the return shipment of a 1688 refund (A5 POST,
// profile endpoint alibaba_goods_return). data.success == false is an *APIError with
// NestedCode/NestedMsg = data.errorCode/errorInfo.
// Retry class: mutating, never retried.
func (c *Client) AlibabaGoodsReturn(ctx context.Context, req GoodsReturnRequest) (Result[GoodsReturnResponse], error) {
	const ep = platform.AlibabaGoodsReturn
	for _, f := range []struct{ name, v string }{{"refundId", req.RefundID}, {"logisticsCompanyNo", req.LogisticsCompanyNo}, {"freightBill", req.FreightBill}} {
		if err := checkID(string(ep), f.name, f.v); err != nil {
			return Result[GoodsReturnResponse]{}, err
		}
	}
	r, err := c.jsonRequest(ep, false, req)
	if err != nil {
		return Result[GoodsReturnResponse]{}, err
	}
	return call(ctx, c, r, func(d *GoodsReturnResponse, raw json.RawMessage) *APIError {
		if !explicitFalse(raw, "success") {
			return nil
		}
		ae := &APIError{NestedCode: d.ErrorCode, NestedMsg: d.ErrorInfo}
		if ae.NestedCode == "" {
			ae.NestedCode = "success=false"
		}
		return ae
	})
}

// AlibabaLogisticsCompanies lists the carriers a 1688 return may use (A6 GET,
// profile endpoint alibaba_logistics_companies). The data may be the list itself or an
// object holding it (list, result, companies or logisticsCompanies); an
// empty object or null is an empty list.
// Retry class: safe, retried.
func (c *Client) AlibabaLogisticsCompanies(ctx context.Context) (Result[[]AlibabaLogisticsCompany], error) {
	r, err := c.idRequest(platform.AlibabaLogisticsCompanies, "", true)
	if err != nil {
		return Result[[]AlibabaLogisticsCompany]{}, err
	}
	res, err := call[companyList](ctx, c, r, nil)
	return Result[[]AlibabaLogisticsCompany]{RequestID: res.RequestID, DevelopID: res.DevelopID,
		Data: []AlibabaLogisticsCompany(res.Data), Attempts: res.Attempts}, err
}

// companyList decodes A6's data in either shape.
type companyList []AlibabaLogisticsCompany

// UnmarshalJSON accepts a list, an object holding a list, or an empty object.
func (l *companyList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var v []AlibabaLogisticsCompany
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	if len(m) == 0 {
		*l = nil
		return nil
	}
	for _, k := range []string{"list", "result", "companies", "logisticsCompanies"} {
		if raw, ok := m[k]; ok {
			var v []AlibabaLogisticsCompany
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			*l = v
			return nil
		}
	}
	return errors.New("logistics companies: no list in data")
}
