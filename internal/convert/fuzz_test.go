package convert

import (
	"testing"
)

// FuzzCSVReader: no panic, offsets never go back, rows read = records + rejected (checked by drain
// inside resumeAll's reader), and resuming from any checkpoint gives the identical remaining output.
func FuzzCSVReader(f *testing.F) {
	for _, s := range []string{
		yellowHeader + "1,2019-01-01 00:00:00,,1,1,1,1,1\n",
		yellowHeader + "\r\n1,\"2019-01-01 00:00:00\",,1,\"1\n\",1,1,1\r1,2019-01-01 00:00:00,,1,1,1,1,1,,\n1,2019",
		"\ufeffpickup_datetime,x\r2019-03-10 02:30:00,\"a\"\"b\"\r\r",
		"vendor_name,Trip_Pickup_DateTime,Payment_Type\nVTS,1/1/2018 2:21:05 AM,CASH\nDDS,2009-01-01 00:00:00.5,\"CR\nD\"",
		"a,b\n1,2\n\"3\"x,4\n\"5",
		yellowHeader + "NA,\"1/1/2019, 2:21:05\u202fPM\",2019-01-01T00:10:00.5Z,\\N,NaN,N/A,-,null\n1,13/1/2019 2:21,,1,1,1,1,1\n",
		",,\n,,\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<14 {
			return
		}
		resumeAll(t, data, 1)
		// Stats hold and the reader ends.
		convertString(t, string(data), Options{})
	})
}
