package gen

import "testing"

func TestFromName(t *testing.T) {
	tests := []struct {
		path   string
		want   Named
		wantOK bool
	}{
		{"fhvhv_tripdata_2022-03.csv", Named{"fhvhv", 2022, 3}, true},
		{"/tmp/x/yellow_tripdata_2019-12.csv.gz", Named{"yellow", 2019, 12}, true},
		{"Green_Tripdata_2015-07.CSV", Named{"green", 2015, 7}, true},
		{"fhv_tripdata_2018-01", Named{"fhv", 2018, 1}, true},
		{"yellow_tripdata_2019-13.csv", Named{}, false},
		{"yellow_tripdata_2019-00.csv", Named{}, false},
		{"trips.csv", Named{}, false},
		{"yellow_tripdata_sample_2019-01.csv", Named{}, false},
		{"limo_tripdata_2019-01.csv", Named{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := FromName(tt.path)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("FromName(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
